# One entry point for tooling. A fresh machine needs only Python >= 3.11 and make:
# `make setup` bootstraps uv into .tools/ and syncs the locked environment into .venv/.
PYTHON ?= python3
UV_VERSION ?= 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test test-fast test-services lint fmt typecheck schemas compose-check chaos clean eval eval-items eval-parties eval-noise bench bench-pipeline bench-screening

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# Bytecode is compiled once here (dependencies at sync, our sources on every setup, only what
# changed): where PYTHONDONTWRITEBYTECODE is set, every worker process would otherwise compile
# every module again at start, seconds of CPU each.
$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

setup: $(VENV)/.synced
	@$(BIN)/python -m compileall -q services schemas benchmarks tests

## run: the whole pipeline on the embedded server, fed with the sample reports, until Ctrl-C
run: setup
	$(BIN)/tradewatch up --feed config/samples

## test: the whole suite (Redis from TRADEWATCH_TEST_REDIS_URL, else 127.0.0.1:6379, else embedded)
test: setup
	$(BIN)/pytest

## test-fast: the unit tier while working: no server, fewer Hypothesis examples, well under a minute
test-fast: setup
	$(BIN)/pytest tests/unit --hypothesis-profile fast

## test-services: the whole suite but the tests marked slow (whole-flow runs, chaos, the cluster,
## benchmark smoke runs, worker processes killed); needs a server like `make test`
test-services: setup
	$(BIN)/pytest -m "not slow"

## eval-items: precision and recall of the item catalog on the main and held-out labelled sets (benchmarks/catalog_eval.py)
eval-items: setup
	$(BIN)/python -m benchmarks.catalog_eval

## lint: ruff (lint and format), mypy --strict, and the import contract (pyproject.toml: stages never
## import one another; shared layers below them)
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

fmt: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## chaos: 20,000 reports through the whole pipeline while workers are SIGKILLed and the server
## restarts; the last line is the JSON result (also in benchmarks/results/chaos.json). ~10 min.
chaos: setup
	$(BIN)/python -m benchmarks.chaos --reports 20000 --out benchmarks/results/chaos.json

## schemas: rewrite schemas/json/ from the pydantic models
schemas: setup
	$(BIN)/python -m schemas.export

## eval: measured quality; each eval is its own script (items: the catalog; parties: screening;
## noise: cases, findings and messages for the samples and the original news report)
eval: eval-items eval-parties eval-noise

eval-noise: setup
	$(BIN)/python -m benchmarks.noise_eval

eval-parties: setup
	$(BIN)/python benchmarks/eval_parties.py

## bench: every benchmark on a fresh loopback server beside its floor (a table, benchmarks/results.json),
## then the screening cost per report with 1,000 and 10,000 listed names
bench: bench-pipeline bench-screening

bench-pipeline: setup
	$(BIN)/python -m benchmarks.run

bench-screening: setup
	$(BIN)/python benchmarks/screening.py

## compose-check: validate docker-compose.yml offline (docker compose config where a client has it)
compose-check: setup
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
