# Two entry points for a fresh machine; each installs what it needs into .venv itself.
#   make test   the test suite against the installed package (what CI runs)
#   make demo   the webcam demo (the sample clip, headless, where there is no camera/display)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
DEPS   := $(VENV)/.deps-installed

.PHONY: test demo install clean

# Dependencies, once: constraints.txt pins torch==2.13.0 so that the CPU wheel is used and
# no CUDA packages are pulled in.
$(DEPS): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt ".[train,camera,dev]"
	touch $@

# The package itself, re-installed (not editable) every time, so tests see what a user gets.
install: $(DEPS)
	$(PIP) install -q --no-deps --force-reinstall .

test: install
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/digitvae demo --auto

clean:
	rm -rf $(VENV) build *.egg-info
