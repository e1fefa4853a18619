#!/usr/bin/env bash
# Run by `bentoml containerize` after the Bento's Python packages are installed
# (bentofile.yaml: docker.setup_script).
#
# insightface requires opencv-python (the GUI build), rapidocr opencv-python-headless. Both
# unpack into the same cv2/ folder, and whichever was installed last owns it; the GUI build
# needs libGL and friends, which slim images lack. Put the headless build's files in place,
# at the version requirements/serve.txt pins. `make` does the same in .venv.
set -euxo pipefail
headless=$(grep -i '^opencv-python-headless==' "$BENTO_PATH/env/python/requirements.txt")
uv pip install --reinstall --no-deps "$headless"
python -c 'import cv2, re; assert re.search(r"GUI:\s+NONE", cv2.getBuildInformation()), "cv2 is not the headless build"'

# The models' folder (MACHINE_LEARNING_CACHE_FOLDER, /cache in the image, as in the stock image):
# the image's user imports into it. Docker fills a new named volume mounted there with this
# folder's owner, so `docker run -v model-cache:/cache ... python -m runners.models import ...`
# can write it.
mkdir -p /cache
chown "${BENTO_USER:-bentoml}:${BENTO_USER:-bentoml}" /cache

# The CUDA image (bentofile.cuda.yaml) installs onnxruntime-gpu, but insightface requires
# onnxruntime, the CPU build, which unpacks into the same onnxruntime/ folder. As with OpenCV:
# remove the CPU build and put the GPU build's files back in place.
gpu=$(grep -i '^onnxruntime-gpu' "$BENTO_PATH/env/python/requirements.txt" || true)
if [ -n "$gpu" ]; then
    uv pip uninstall onnxruntime
    uv pip install --reinstall --no-deps "onnxruntime-gpu==${gpu##*==}"
    python -c 'import onnxruntime as o; assert "CUDAExecutionProvider" in o.get_available_providers(), o.get_available_providers()'
fi
