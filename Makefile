# Two commands for a fresh clone:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/fer-prep: pyproject.toml setup.py
	@free=$$(df -Pk . | awk 'NR == 2 {print $$4}'); [ "$$free" -ge 7000000 ] || { echo \
		"make setup: the venv needs about 7 GB (torch's CUDA build); $$((free / 1024)) MB free here" \
		>&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,train]'
	touch $@

# `$(call apt,COMMAND,PACKAGES,WHAT SKIPS)`: Debian's PACKAGES installed where COMMAND is missing
# and apt and root allow (what a test needs: a browser, a SLURM cluster), else a note
APT_GET = DEBIAN_FRONTEND=noninteractive apt-get install -y -q
apt = command -v $(1) >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	2>&1 && { $(APT_GET) $(2) >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && \
	$(APT_GET) $(2) >/dev/null 2>&1; }; }; } || echo "note: no $(1), and it cannot be \
	installed here: $(3)"

.PHONY: setup demo test lint bench docs
setup: $(BIN)/fer-prep

demo: setup  ## the main job on the embedded sample data (no ../shared, no download)
	$(BIN)/fer-prep sample --out sample-data
	$(BIN)/fer-prep ckplus align --root sample-data/ckplus --work fer-work --include-unlabelled
	$(BIN)/fer-prep folds --dataset ckplus --work fer-work --k 3
	$(BIN)/fer-prep masks --dataset ckplus --work fer-work
	$(BIN)/fer-prep export fmpn --dataset ckplus --work fer-work --out fer-work/exports/fmpn
	$(BIN)/fer-train --dataset ckplus --work fer-work --model resnet18 --fold all --epochs 1 \
		--batch-size 8 --device cpu
	$(BIN)/fer-prep afew video2frame --root sample-data/afew --work fer-work
	$(BIN)/fer-prep afew align --work fer-work
	$(BIN)/fer-prep report --work fer-work
	@echo "CK+:   fer-work/ckplus/{align,folds,masks}/, FMPN layout in fer-work/exports/fmpn"
	@echo "AFEW:  fer-work/afew/frames, fer-work/afew/align/faces  (manifest.csv in each)"
	@echo "train: fer-work/ckplus/train/resnet18/metrics.json"
	@echo "check: fer-work/report.html (open it in a browser); fer-prep status --work fer-work"

test: setup  ## the test suite (real-data tests need ../shared or FER_PREP_SHARED)
	@$(call apt,chromium,chromium,the browser tests skip)
	@$(call apt,slurmd,slurmd slurmctld slurm-client munge,the SLURM tests skip)
	$(BIN)/ruff check .
	$(BIN)/lint-imports  # the import layers of pyproject.toml's [tool.importlinter]
	@# one worker per core (pytest-xdist), so one thread each: torch's OpenMP pool on top
	@# oversubscribed the cores (.ci/run 18 min 28 s, 12 min 45 s with one thread)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q --durations=15 -n auto --dist loadfile

docs: setup  ## the manual as a site: docs/_build/html/index.html (offline; a warning fails it)
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

bench: setup  ## speed side by side with the seeds' own methods (needs ../shared)
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/readers.py
	$(BIN)/python bench/fer2013.py
	$(BIN)/python bench/fer2013_chain.py
	$(BIN)/python bench/affectnet_read.py
	$(BIN)/python bench/ckplus_align.py
	$(BIN)/python bench/ckplus_follow.py
	$(BIN)/python bench/mesh68_error.py
	$(BIN)/python bench/afew_video.py
	$(BIN)/python bench/fmpn_masks.py
	$(BIN)/python bench/fmpn_masks_mmi.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/clusters.py  # root, munge and slurm: make test installs them
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/backends.py
