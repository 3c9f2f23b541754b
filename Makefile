# trainkit: the two commands are `make run` and `make test`.
# Everything else here is a step they use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Default synthetic dataset written by `make run`, and the small one `make test` uses.
RUN_CHILDREN  ?= 50000
RUN_SEED      ?= 20240331
RUN_DATA      := data/default
TEST_CHILDREN ?= 8000
TEST_SEED     ?= 7
TEST_DATA     := build/test-data
NOTEBOOKS     := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# The DfE's validation rules (data-to-insight's csc-validator-be-903/-cin) pin pandas<2, so they
# get a virtual environment of their own; if it cannot be built, the tests that use it skip.
VALIDATORS    := .venv-validators/.installed

.PHONY: run test env lint generate notebooks sample clean help

help:
	@echo "make run   - create .venv, generate the default synthetic data, execute every notebook"
	@echo "make test  - create .venv if needed, run the unit tests and the notebooks (papermill + nbval)"

env: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11+ or run 'make PYTHON=python3.11 ...'"; exit 2; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || { echo "error: trainkit needs Python 3.11 or newer ($(PYTHON) is older); run 'make PYTHON=python3.11 ...'"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[notebooks,test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

generate: $(STAMP)
	$(BIN)/trainkit generate --children $(RUN_CHILDREN) --seed $(RUN_SEED) --out $(RUN_DATA) --force

run: generate
	@mkdir -p build/notebooks
	@for nb in $(NOTEBOOKS); do \
	  echo "executing $$nb"; \
	  $(BIN)/papermill --no-progress-bar --cwd notebooks -p DATA_DIR "$(CURDIR)/$(RUN_DATA)" "$$nb" "build/notebooks/$$(basename $$nb)" --log-level WARNING || exit 1; \
	done
	@echo
	@echo "Done. Synthetic data: $(RUN_DATA)/ (truth/: the simulated lives; returns/: SSDA903 and CIN returns;"
	@echo "      research/: NPD, HES and bridging extracts; identified/: pupil and NHS identifiers; manifest.json)"
	@echo "Executed notebooks:   build/notebooks/"
	@echo "Calibration report:   $(BIN)/trainkit calibrate $(RUN_DATA)"
	@echo "Open them in JupyterLab with:  $(BIN)/jupyter lab build/notebooks/"
	@echo "(or work on the originals, which read synthetic/sample/ by default:  $(BIN)/jupyter lab notebooks/)"

$(TEST_DATA)/manifest.json: $(STAMP) $(shell find src -name '*.py' -o -name '*.yaml' -o -name '*.csv*' 2>/dev/null)
	$(BIN)/trainkit generate --children $(TEST_CHILDREN) --seed $(TEST_SEED) --out $(TEST_DATA) --force

$(VALIDATORS): tests/validators/requirements.txt
	@rm -rf .venv-validators
	@( $(PYTHON) -m venv .venv-validators \
	   && .venv-validators/bin/python -m pip install --quiet -r tests/validators/requirements.txt \
	   && touch $@ ) \
	|| { rm -rf .venv-validators; echo "warning: could not build .venv-validators; the DfE-rule tests will skip"; }

test: $(TEST_DATA)/manifest.json $(VALIDATORS)
	@rm -rf build/test-notebooks && mkdir -p build/test-notebooks
	@for nb in $(NOTEBOOKS); do \
	  echo "papermill $$nb"; \
	  $(BIN)/papermill --no-progress-bar --cwd notebooks -p DATA_DIR "$(CURDIR)/$(TEST_DATA)" "$$nb" "build/test-notebooks/$$(basename $$nb)" --log-level WARNING || exit 1; \
	done
	@for nb in $(NOTEBOOKS); do \
	  echo "papermill $$nb on the committed sample"; \
	  $(BIN)/papermill --no-progress-bar --cwd notebooks "$$nb" "build/test-notebooks/sample-$$(basename $$nb)" --log-level WARNING || exit 1; \
	done
	$(BIN)/ruff check src tests benchmarks tools
	TRAINKIT_TEST_DATA="$(CURDIR)/$(TEST_DATA)" $(BIN)/python -m pytest tests --nbval-lax build/test-notebooks/[0-9]*.ipynb

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

sample: $(STAMP)
	$(BIN)/python tools/make_sample.py

clean:
	rm -rf build data
