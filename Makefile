# Two entry points: `make run` (the demo workflow) and `make test`. Both build .venv from the
# pinned constraints, so a fresh machine needs only python3 (>= 3.11) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONSTRAINTS := requirements/constraints.txt
CORES ?= 2

.PHONY: run test test-fast lint venv system-deps benchmark clean

$(BIN)/spectropol: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $@

venv: $(BIN)/spectropol
	@# The package's bytecode, made once here: where PYTHONDONTWRITEBYTECODE is set (CI, most
	@# containers) every job would otherwise compile the modules it imports anew (0.1 s a job).
	@$(BIN)/python -m compileall -q src

# WSClean is the imaging peer for the comparison tests; installed from Debian when we may.
system-deps:
	@tools/install-system-deps.sh

run: venv
	$(BIN)/snakemake --profile profiles/local --cores $(CORES) --configfile config/config.yaml

test: venv system-deps lint
	$(BIN)/pytest -ra

# ruff (pyflakes, import order, line length; pyproject.toml) and Snakemake's own lints, read in an
# empty folder so that linting writes nothing here.
lint: venv
	$(BIN)/ruff check .
	tmp=$$(mktemp -d) && $(BIN)/snakemake -s $(CURDIR)/Snakefile --directory $$tmp --lint; rc=$$?; rm -rf $$tmp; exit $$rc

test-fast: venv
	$(BIN)/pytest -ra -m 'not slow'

benchmark: venv system-deps
	$(BIN)/python benchmarks/imaging.py
	$(BIN)/python benchmarks/deconvolution.py
	$(BIN)/python benchmarks/faraday.py --sky diffuse
	$(BIN)/python benchmarks/faraday.py --sky points --no-ladder
	$(BIN)/python benchmarks/detection.py
	$(BIN)/python benchmarks/incremental.py
	$(BIN)/python benchmarks/storage.py
	$(BIN)/python benchmarks/kafka.py

clean:
	rm -rf work results logs .snakemake benchmarks/runs
