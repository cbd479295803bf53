# Two commands for a fresh clone:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/fer-prep: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,train]'
	touch $@

.PHONY: setup demo test lint bench
setup: $(BIN)/fer-prep

demo: setup  ## the main job on the embedded sample data (no ../shared, no download)
	$(BIN)/fer-prep sample --out sample-data
	$(BIN)/fer-prep ckplus align --root sample-data/ckplus --work fer-work --include-unlabelled
	$(BIN)/fer-prep afew video2frame --root sample-data/afew --work fer-work
	$(BIN)/fer-prep afew align --work fer-work
	@echo "CK+ faces:  fer-work/ckplus/align/faces  (manifest: fer-work/ckplus/align/manifest.csv)"
	@echo "AFEW:       fer-work/afew/frames, fer-work/afew/align/faces  (manifest.csv in each)"

test: setup  ## the test suite (real-data tests need ../shared or FER_PREP_SHARED)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: setup  ## speed side by side with the seeds' own methods (needs ../shared)
	$(BIN)/python bench/ckplus_align.py
	$(BIN)/python bench/mesh68_error.py
	$(BIN)/python bench/afew_video.py
