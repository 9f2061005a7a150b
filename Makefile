# The two entry points of the README.
#   PADDLE=cpu (default): paddlepaddle from PyPI.
#   PADDLE=gpu: paddlepaddle-gpu; PyPI stops at 2.6, so give Paddle's own wheel
#               index for your CUDA version as PADDLE_INDEX=URL.
#   PADDLE=none: use the Paddle already installed in $(VENV).
PADDLE ?= cpu
PADDLE_INDEX ?=
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(PADDLE)
EXTRAS_cpu := cpu,demo,dev
EXTRAS_gpu := gpu,demo,dev
EXTRAS_none := demo,dev
EXTRAS := $(or $(EXTRAS_$(PADDLE)),$(error PADDLE must be cpu, gpu or none, got '$(PADDLE)'))
INDEX_FLAG := $(if $(PADDLE_INDEX),--extra-index-url $(PADDLE_INDEX),)

.PHONY: demo test install clean

$(PYTHON):
	python3 -m venv $(VENV)

$(STAMP): $(PYTHON) setup.py
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet $(INDEX_FLAG) -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PYTHON) tools/demo.py

test: $(STAMP)
	$(PYTHON) -m pytest -q tests

clean:
	rm -rf output log
