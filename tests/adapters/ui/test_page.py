"""The status and try-it page in a real browser: headless Chromium from Debian's packages,
driven with selenium, against a served process with every kind of model.

The page must show what the service has, and draw exactly what ``/predict`` answers: the tests
compute the truth from ``/predict`` themselves (OCR lines, face boxes and groups, CLIP
rankings) and compare it with what the page shows. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support import multipart
from tests.support.bento_server import ROOT
from tests.support.fake_faces import faces_image
from tests.support.ocr_cases import FIXTURES

ARTIFACTS = ROOT / "test-artifacts"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CLIP = "cn-clip/ViT-B-16__openai"
THRESHOLD = 0.5  # the page's default face-grouping threshold


def browser(language: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not Path(CHROMEDRIVER).exists():
        pytest.fail("chromium-driver is not installed: `apt-get install chromium chromium-driver` (.ci/run does)")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,2400",
                 f"--lang={language}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver


def wait(driver, condition, timeout: float = 90):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: condition(d))


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def predict(server, fields: dict) -> dict:
    body, content_type = multipart.build(fields)
    response = httpx.post(f"{server.url}/predict", content=body, headers={"content-type": content_type}, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def unit(values: list[float]) -> np.ndarray:
    vector = np.array(values, np.float64)
    return vector / np.linalg.norm(vector)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    out = {"zh_clean.png": FIXTURES / "zh_clean.png", "prices.png": FIXTURES / "prices.png"}
    # The same face in two photos (one person) and another face alone.
    for name, centres, seed in (("family.png", [(200, 200), (600, 380)], 3), ("party.png", [(400, 300)], 3)):
        path = folder / name
        faces_image(800, 600, centres, 90, seed=seed).save(path)
        out[name] = path
    return out


@pytest.fixture(scope="module")
def page(mt_server, photos):
    """A zh-CN browser with every photo picked, each analysed."""
    driver = browser("zh-CN")
    try:
        driver.get(f"{mt_server.url}/")  # the root sends a browser to /ui/
        wait(driver, lambda d: d.current_url.endswith("/ui/") and css(d, "#models tbody tr"))
        css(driver, "#files")[0].send_keys("\n".join(str(path) for path in photos.values()))
        wait(driver, lambda d: len(css(d, '.photo[data-done="true"]')) == len(photos))
        yield driver
    finally:
        driver.quit()


def test_the_page_speaks_the_browsers_language_and_switches(mt_server):
    for language, heading, other, other_heading in (("zh-CN", "状态", "en", "Status"), ("en", "Status", "zh-CN", "状态")):
        driver = browser(language)
        try:
            driver.get(f"{mt_server.url}/ui/")
            wait(driver, lambda d: css(d, "#status h2")[0].text == heading)
            wait(driver, lambda d: css(d, "#models tbody tr"))
            css(driver, f'nav button[data-lang="{other}"]')[0].click()
            wait(driver, lambda d: css(d, "#status h2")[0].text == other_heading)
        finally:
            driver.quit()


def test_the_status_panel_shows_the_models_upstream_mt_photos_and_runners(page, mt_server):
    rows = {(r.get_attribute("data-task"), r.get_attribute("data-name")): r.text for r in css(page, "#models tbody tr")}
    assert ("clip", CLIP) in rows and ("facial-recognition", "antelopev2") in rows  # known, imported or not
    assert "是" in rows[("clip", CLIP)] and "否" in rows[("facial-recognition", "antelopev2")]
    assert "未设置" in css(page, "#upstream")[0].text  # this server has no upstream
    assert "/represent: buffalo_l" in css(page, "#mt-photos")[0].text
    runtime = css(page, "#runtime")[0].text  # the test servers run ONNX Runtime's exact fp32
    assert "PRECISION=fp32" in runtime and "clip: ONNX Runtime CPU fp32" in runtime and "CPU 特性" in runtime
    # The panel reads /metrics every 5 s: the photos' requests show up there.
    wait(page, lambda d: any(r.get_attribute("data-api") == "clip_image" for r in css(d, "#runners tbody tr")), 30)
    runner = next(r for r in css(page, "#runners tbody tr") if r.get_attribute("data-api") == "clip_image")
    served = int(runner.find_elements("css selector", "td")[1].text)
    assert served >= 1


def test_ocr_lines_shown_are_what_predict_answers(page, mt_server, photos):
    entries = json.dumps({"ocr": {
        "detection": {"modelName": "PP-OCRv5_mobile", "options": {"minScore": 0.5, "maxResolution": 736}},
        "recognition": {"modelName": "PP-OCRv5_mobile", "options": {"minScore": 0.8}}}})
    for name in ("zh_clean.png", "prices.png"):
        truth = predict(mt_server, {"entries": entries, "image": multipart.FilePart(name, photos[name].read_bytes())})
        shown = [li.get_attribute("data-text") for li in css(page, f'.photo[data-photo="{name}"] .lines li')]
        assert shown == truth["ocr"]["text"] and shown


def test_face_boxes_and_groups_are_what_predict_answers(page, mt_server, photos):
    entries = json.dumps({"facial-recognition": {"detection": {"modelName": "buffalo_l", "options": {"minScore": 0.7}},
                                                 "recognition": {"modelName": "buffalo_l"}}})
    faces, shown, photo_of = [], [], []
    for name in ("family.png", "party.png"):
        answer = predict(mt_server, {"entries": entries, "image": multipart.FilePart(name, photos[name].read_bytes())})
        items = css(page, f'.photo[data-photo="{name}"] .faces li')
        assert [json.loads(li.get_attribute("data-box")) for li in items] == [f["boundingBox"] for f in answer["facial-recognition"]]
        faces += [unit(json.loads(f["embedding"])) for f in answer["facial-recognition"]]
        shown += [int(li.get_attribute("data-group")) for li in items]
        photo_of += [name] * len(items)
    # The truth: faces at cosine similarity >= the threshold are one person, transitively.
    parent = list(range(len(faces)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(faces)):
        for j in range(i + 1, len(faces)):
            if faces[i] @ faces[j] >= THRESHOLD:
                parent[root(i)] = root(j)
    same = lambda groups: {(i, j) for i in range(len(groups)) for j in range(len(groups)) if groups[i] == groups[j]}  # noqa: E731
    assert same(shown) == same([root(i) for i in range(len(faces))])
    # The same face is in both photos: the page groups across photos, as Immich clusters.
    assert any(shown[i] == shown[j] and photo_of[i] != photo_of[j] for i in range(len(faces)) for j in range(len(faces)))


def test_search_ranks_photos_by_cosine_and_weighs_ocr_text(page, mt_server, photos):
    from selenium.webdriver.common.keys import Keys

    query = predict(mt_server, {"entries": json.dumps({"ocr": {
        "detection": {"modelName": "PP-OCRv5_mobile"}, "recognition": {"modelName": "PP-OCRv5_mobile",
                                                                    "options": {"minScore": 0.8}}}}),
        "image": multipart.FilePart("zh_clean.png", photos["zh_clean.png"].read_bytes())})["ocr"]["text"][0]
    box = css(page, "#query")[0]
    box.clear()
    box.send_keys(query, Keys.ENTER)
    wait(page, lambda d: len(css(d, "#ranking-clip li")) == len(photos))

    text = unit(json.loads(predict(mt_server, {"entries": json.dumps({"clip": {"textual": {
        "modelName": CLIP, "options": {"language": "zh-CN"}}}}), "text": query})["clip"]))
    cosine = {}
    for name, path in photos.items():
        image = predict(mt_server, {"entries": json.dumps({"clip": {"visual": {"modelName": CLIP}}}),
                                    "image": multipart.FilePart(name, path.read_bytes())})
        cosine[name] = float(unit(json.loads(image["clip"])) @ text)
    shown = [(li.get_attribute("data-photo"), float(li.get_attribute("data-score"))) for li in css(page, "#ranking-clip li")]
    assert [name for name, _ in shown] == sorted(cosine, key=cosine.get, reverse=True)
    assert all(abs(score - cosine[name]) < 1e-5 for name, score in shown)

    # The query is a line of zh_clean.png's text: the second ranking adds the weight (0.3) to it.
    combined = {li.get_attribute("data-photo"): float(li.get_attribute("data-score")) for li in css(page, "#ranking-text li")}
    assert abs(combined["zh_clean.png"] - (cosine["zh_clean.png"] + 0.3)) < 1e-5
    assert abs(combined["family.png"] - cosine["family.png"]) < 1e-5
    ARTIFACTS.mkdir(exist_ok=True)
    page.save_screenshot(str(ARTIFACTS / "ui-zh-CN.png"))
    assert (ARTIFACTS / "ui-zh-CN.png").stat().st_size > 10_000
