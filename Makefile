# The two entry points of the README. PADDLE=gpu installs paddlepaddle-gpu instead.
PADDLE ?= cpu
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(PADDLE)

.PHONY: demo test install clean

$(PYTHON):
	python3 -m venv $(VENV)

$(STAMP): $(PYTHON) setup.py
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e ".[$(PADDLE),demo,dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PYTHON) tools/demo.py

test: $(STAMP)
	$(PYTHON) -m pytest -q tests

clean:
	rm -rf output log
