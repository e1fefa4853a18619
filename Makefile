# The two commands a new user needs: `make serve` (port 3003) and `make test`.
# Both create .venv in the project root and install into it first. Serving needs only the
# pinned runtime (requirements/serve.txt, as the Bento installs it); tests also need the
# `export` extra (torch, cn-clip: several GB), which `make tools` installs for users who
# import Chinese-CLIP checkpoints.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3003

.PHONY: serve test tools build bench image image-test models image-cuda system-packages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Each stamp re-installs when the dependency lists change.
# insightface pulls in OpenCV's GUI build, which shares cv2/ with the headless one rapidocr
# needs; the headless files go in last, as in the image (config/container_setup.sh).
HEADLESS_CV2 = $$(grep -i '^opencv-python-headless==' requirements/serve.txt)
$(VENV)/.serve: $(BIN)/python pyproject.toml requirements/serve.txt
	$(BIN)/python -m pip install --quiet -r requirements/serve.txt -e .
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps $(HEADLESS_CV2)
	touch $@

$(VENV)/.tools: $(VENV)/.serve
	$(BIN)/python -m pip install --quiet -e '.[export]'
	touch $@

$(VENV)/.test: $(VENV)/.tools
	$(BIN)/python -m pip install --quiet -e '.[test,export]'
	touch $@

serve: $(VENV)/.serve
	$(BIN)/bentoml serve . --port $(PORT)

tools: $(VENV)/.tools

# Chromium, its driver and a CJK font for the status page's browser tests (Debian packages).
system-packages:
	bash tests/support/system_packages.sh

test: $(VENV)/.test system-packages
	$(BIN)/python -m pytest

$(VENV)/.bench: $(VENV)/.tools
	$(BIN)/python -m pip install --quiet -e '.[bench,test,export]'
	touch $@

bench: $(VENV)/.bench
	$(BIN)/python -m bench.bound

$(VENV)/.build: $(VENV)/.serve
	$(BIN)/python -m pip install --quiet -e '.[build]'
	touch $@

build: $(VENV)/.build
	$(BIN)/bentoml build .

# The default models into the BentoML store (downloads; Chinese-CLIP's export needs the tools'
# torch): cn-clip ViT-B-16 for search and buffalo_l for faces. OCR needs none: PP-OCRv5 mobile
# ships in a wheel. `make image` then bakes them in.
# SOURCE=modelscope downloads CLIP from ModelScope; HF_ENDPOINT, IMMICH_CN_ML_MODELSCOPE_ENDPOINT
# and IMMICH_CN_ML_INSIGHTFACE_BASE_URL (mirrors) reach the commands from the environment.
SOURCE ?=
models: $(VENV)/.tools
	$(BIN)/python -m runners.models import clip ViT-B-16 $(if $(SOURCE),--source $(SOURCE))
	$(BIN)/python -m runners.models import face buffalo_l

# The CPU image, with the models of the BentoML store baked in (`bentoml build` packs them).
# Without BuildKit: the classic builder works where no buildx plugin is installed.
IMAGE ?= immich-cn-ml:latest
image: build
	DOCKER_BUILDKIT=0 $(BIN)/bentoml containerize immich-cn-ml:latest -t $(IMAGE)

# The CUDA image (onnxruntime-gpu; CUDA 13 and cuDNN 9 from pip wheels): needs an NVIDIA driver
# for CUDA 13 on the host, and runs on the CPU, with a warning in the log, where no GPU is visible.
IMAGE_CUDA ?= immich-cn-ml:latest-cuda
image-cuda: $(VENV)/.build
	$(BIN)/bentoml build . -f bentofile.cuda.yaml
	DOCKER_BUILDKIT=0 $(BIN)/bentoml containerize immich-cn-ml:latest -t $(IMAGE_CUDA)

# Builds an image of its own (no models baked in) and drives it with Docker: not part of `make test`.
# The split layout's containers (deploy/docker-compose.split.yml) come up with Debian's docker-compose.
image-test: $(VENV)/.test
	bash tests/support/system_packages.sh docker-compose
	$(BIN)/python -m pytest -m image tests/image
