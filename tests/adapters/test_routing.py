from __future__ import annotations

from adapters.entries import Entry
from adapters.routing import Router


class Model:
    async def predict(self, inputs, options, previous):  # pragma: no cover - never run here
        raise AssertionError


OCR_DET, OCR_REC, CN_CLIP = Model(), Model(), Model()
LOCAL = {
    ("ocr", "detection", "PP-OCRv5_mobile"): OCR_DET,
    ("ocr", "recognition", "PP-OCRv5_mobile"): OCR_REC,
    ("clip", "visual", "cn-clip/ViT-B-16__openai"): CN_CLIP,
}


def router(aliases=None) -> Router:
    return Router(LOCAL, aliases or {})


def test_bare_registration_matches_any_prefix():
    assert router().resolve(Entry("ocr", "detection", "immich-app/PP-OCRv5_mobile")) is OCR_DET


def test_prefixed_registration_needs_its_prefix():
    assert router().resolve(Entry("clip", "visual", "cn-clip/ViT-B-16__openai")) is CN_CLIP
    assert router().resolve(Entry("clip", "visual", "cn-clip/ViT-B-16::openai")) is CN_CLIP
    # The stock OpenCLIP model of the same name is not ours.
    assert router().resolve(Entry("clip", "visual", "ViT-B-16__openai")) is None
    assert router().resolve(Entry("clip", "visual", "immich-app/ViT-B-16__openai")) is None


def test_type_and_task_must_match():
    assert router().resolve(Entry("clip", "textual", "cn-clip/ViT-B-16__openai")) is None


def test_alias_claims_a_stock_name():
    aliased = router({"ViT-B-32__openai": "cn-clip/ViT-B-16__openai"})
    assert aliased.resolve(Entry("clip", "visual", "ViT-B-32__openai")) is CN_CLIP
    assert aliased.resolve(Entry("clip", "visual", "immich-app/ViT-B-32__openai")) is CN_CLIP
    assert aliased.resolve(Entry("clip", "visual", "ViT-B-32::openai")) is CN_CLIP


def test_full_name_alias_wins_over_cleaned_name_alias():
    aliased = router({"OFA-Sys/ViT-B-16__openai": "cn-clip/ViT-B-16__openai", "ViT-B-16__openai": "nothing"})
    assert aliased.resolve(Entry("clip", "visual", "OFA-Sys/ViT-B-16__openai")) is CN_CLIP
    assert aliased.resolve(Entry("clip", "visual", "ViT-B-16__openai")) is None


def test_plan_splits_by_task():
    plan = router().plan(
        [
            Entry("ocr", "detection", "PP-OCRv5_mobile"),
            Entry("ocr", "recognition", "PP-OCRv5_mobile"),
            Entry("clip", "visual", "ViT-B-32__openai"),
        ]
    )
    assert [(e.task, e.type, m) for e, m in plan.local] == [("ocr", "detection", OCR_DET), ("ocr", "recognition", OCR_REC)]
    assert [(e.task, e.type) for e in plan.upstream] == [("clip", "visual")]


def test_task_only_partly_local_goes_upstream_whole():
    entries = [Entry("ocr", "detection", "PP-OCRv5_mobile"), Entry("ocr", "recognition", "PP-OCRv5_server")]
    plan = router().plan(entries)
    assert plan.local == []
    assert plan.upstream == entries


def test_a_known_model_that_is_not_here_is_logged_once_with_its_import_command(caplog):
    routes = router()
    entries = [Entry("facial-recognition", "detection", "buffalo_l"), Entry("facial-recognition", "recognition", "buffalo_l"),
               Entry("clip", "visual", "ViT-B-32__openai")]  # the stock model: not ours to import
    with caplog.at_level("WARNING", logger="adapters.routing"):
        routes.plan(entries)
        routes.plan(entries)
    hints = [r.getMessage() for r in caplog.records if "imports it" in r.getMessage()]
    assert len(hints) == 1  # one line for the pack, however often it is asked for
    assert hints[0].startswith("facial-recognition model 'buffalo_l' is not imported here")
    assert "`python -m runners.models import face buffalo_l`" in hints[0]
