"""The runner layouts, and what every process of the Bento imports.

Each check runs in a fresh interpreter: the layout is chosen when ``service.py`` is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.bento_server import ROOT

#: Every runner offers ``load``, ``about`` and ``unload_idle`` besides its families' APIs.
COMMON = ["about", "load", "unload_idle"]
APIS = {"clip_image", "clip_text", "ocr_detect", "ocr_recognize", "face_detect", "face_embed", *COMMON}

SCRIPT = """
import json, os, sys
import service
deps = {name: dep.on for name, dep in service.ImmichCnMl.dependencies.items()}

def media_types(runner):
    # Each API's settled media type, and the one BentoML works out when none is set.
    out = {}
    for name, method in runner.apis.items():
        spec = method.output_spec
        settled, spec.media_type = spec.media_type, None
        out[name] = [settled, spec.mime_type()]
        spec.media_type = settled
    return out

print(json.dumps({
    "media_types": {runner.name: media_types(runner) for runner in deps.values()},
    "dependencies": {name: [runner.name, sorted(runner.apis)] for name, runner in deps.items()},
    "imported": sorted({m.split(".")[0] for m in sys.modules} & {"onnxruntime", "insightface", "rapidocr", "cv2",
                                                                 "onnx", "tokenizers", "skimage", "torch", "openvino"}),
    "tunables": os.environ.get("GLIBC_TUNABLES"),
}))
"""


def describe(tmp_path, runners: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMMICH_CN_ML_")}
    env["BENTOML_HOME"] = str(tmp_path)
    if runners:
        env["IMMICH_CN_ML_RUNNERS"] = runners
    run = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


def test_a_home_server_runs_every_model_in_one_runner(tmp_path):
    found = describe(tmp_path, None)
    assert found["dependencies"] == {"models": ["model-runner", sorted(APIS)]}


def test_split_makes_one_runner_per_family_with_the_same_api_names(tmp_path):
    found = describe(tmp_path, "split")
    assert found["dependencies"] == {
        "clip": ["clip-runner", sorted(["clip_image", "clip_text", *COMMON])],
        "ocr": ["ocr-runner", sorted(["ocr_detect", "ocr_recognize", *COMMON])],
        "faces": ["face-runner", sorted(["face_detect", "face_embed", *COMMON])],
    }


def test_importing_the_service_loads_no_model_library(tmp_path):
    # `bentoml serve` and every runner import service.py: pre- and post-processing libraries
    # (and ONNX Runtime, which only runners need, once they start) must wait.
    found = describe(tmp_path, None)
    assert found["imported"] == []
    # ...and it asks glibc for huge pages in the workers it starts (runners/memory.py)
    assert found["tunables"] == "glibc.malloc.hugetlb=1"


def test_every_runner_answer_has_its_media_type_worked_out_once(tmp_path):
    # Settled at start (runners.services.settle_media_types) to what BentoML would work out for
    # every answer again: the same header, without generating a JSON schema per call.
    for layout in (None, "split"):
        described = describe(tmp_path, layout)
        apis = {name: set(api_names) for name, api_names in described["dependencies"].values()}
        assert set(described["media_types"]) == set(apis)
        for runner, types in described["media_types"].items():
            assert set(types) == apis[runner]
            for api, (settled, worked_out) in types.items():
                assert settled == worked_out == "application/json", (runner, api)
