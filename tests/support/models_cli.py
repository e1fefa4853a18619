"""Run ``python -m runners.models`` as a user does, in a BENTOML_HOME of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.support.bento_server import ROOT
from tests.support.ports import free_port


def models(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runners.models", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true", **(env or {})},
    )


def offline_import(home: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """``import ...`` behind a proxy that refuses every connection: offline, whatever network
    this machine has. Returns the run and how long it took."""
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    run = models(home, "import", *args, env={"HTTPS_PROXY": dead, "HTTP_PROXY": dead}, timeout=60)
    return run, time.monotonic() - started


def ocr_download(folder: Path) -> Path:
    """``folder`` holding the PP-OCRv5 mobile files from their wheel, laid out as a user would
    download them for ``import ocr NAME --from folder`` (readable by any user, e.g. a container's)."""
    import shutil

    from runners.models.ocr import CATALOG, package_dir

    wheel = CATALOG["PP-OCRv5_mobile"].wheel
    folder.mkdir(parents=True, exist_ok=True)
    for part, name in ((wheel.det, "ch_PP-OCRv5_det.onnx"), (wheel.rec, "ch_PP-OCRv5_rec.onnx")):
        shutil.copy(package_dir(wheel.package) / part, folder / name)
        (folder / name).chmod(0o644)
    folder.chmod(0o755)
    return folder


#: The OCR model the import tests store (from the PP-OCRv5 mobile files of the wheel).
IMPORTED_OCR = "PP-OCRv5_server"


def imported_ocr_request(name: str = IMPORTED_OCR) -> tuple[bytes, str]:
    """Immich's OCR request for ``name`` on the clean Chinese test image: (body, content type)."""
    import json

    from tests.support import multipart
    from tests.support.ocr_cases import FIXTURES

    entries = json.dumps({"ocr": {
        "detection": {"modelName": name, "options": {"minScore": 0.5, "maxResolution": 736}},
        "recognition": {"modelName": name, "options": {"minScore": 0.8}},
    }})
    return multipart.build({"entries": entries, "image": multipart.FilePart("blob", (FIXTURES / "zh_clean.png").read_bytes())})
