# rhoflow developer entry points. `make demo` and `make test` are all a newcomer needs:
# both depend on `env`, which is idempotent (seconds when everything is installed).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rhoflow-installed
SYSTEM_TOOLS := psi4 xtb

.PHONY: env system-tools demo test lint clean

env: $(STAMP) system-tools

# torch first and exactly pinned: any other spec pulls GBs of CUDA wheels.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# psi4 and xtb command-line programs come from Debian (psi4 1.3.2, xtb 6.5.1).
system-tools:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
	  echo "rhoflow needs these programs on PATH:$$missing"; \
	  echo "  Debian/Ubuntu: sudo apt-get install$$missing"; \
	  echo "  conda:         use envs/psi4.yaml and envs/xtb.yaml (snakemake --sdm conda)"; \
	  exit 1; \
	fi

demo: env
	PATH="$(CURDIR)/$(BIN):$$PATH" snakemake --profile profiles/local
	@echo
	@echo "rhoflow demo outputs:"
	@echo "  results/shards/       molecule tables per shard, manifest.tsv, ledger.tsv"
	@echo "  results/conformers/   conformers per shard (.parquet) and their ledgers"
	@echo "  results/density/      <engine>/<shard>.zarr density stores (+ ledgers), <engine>/index.parquet,"
	@echo "                        <engine>/labels.parquet (typed labels: engine + source, units in names)"
	@echo "  results/splits/       <source>.parquet: id -> train/val/test"
	@echo "  results/voxels/       voxel grids per shard;  results/pointclouds/  point clouds per shard"
	@echo "  results/render/       RGB-D density + structure images per shard; gallery/ PNGs; structures/"
	@echo "  results/edg/          imageed/ (model.pt, reconstructions.png), imageed_features.zarr, teacher/,"
	@echo "                        teacher_features/<source>.zarr"
	@echo "  results/models/       <source>/<model>/<target>/seed<k>/: checkpoints, metrics.csv, test predictions;"
	@echo "                        <source>/lambda<λ>/edg-<model>/...: EDG students"
	@echo "  results/tables/       <source>_properties.csv/.md (test MAE vs the train-mean baseline, ±EDG),"
	@echo "                        <source>_edg_lambda.csv/.md/.png, parity plots"
	@echo "  results/vqgan/        the 3D VQ-GAN run, slices.png, embeddings and fine-tuned heads"
	@echo "  results/md/           xtb/<shard>.zarr GFN2-xTB MD trajectories (+ ledgers), splits/ of their frames"
	@echo "  results/ndem/         <trajectory>/<variant>/seed<k>/: force fields (ET, +NDeM, +denoising, +DeNS)"
	@echo "                        and NDeM's ablation runs; tables md_forces.* and ndem_ablation.* (+ .png)"
	@echo "  results/summary/      stages.md / stages.tsv: molecules kept and failures per reason"
	@echo "  inspect: .venv/bin/rhoflow store info results/density/psi4/demo-00000.zarr"
	@cat results/summary/stages.md
	@echo
	@cat results/tables/demo_properties.md
	@echo
	@cat results/tables/md_forces.md

test: env
	$(BIN)/python -m pytest -q

lint: env
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports --no-cache
	PATH="$(CURDIR)/$(BIN):$$PATH" snakemake --lint

clean:
	rm -rf results logs .snakemake
