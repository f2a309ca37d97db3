# Two entry points for a newcomer: `make demo` and `make test` (both install first).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SHARED ?= ../shared
DEMO_OUT ?= out/demo

.PHONY: install demo test test-fast bench bench-tokenizer bench-train bench-datatrove clean-demo

# Re-installs only when pyproject.toml changed; pip finds torch's CPU build and the
# registry packages through the machine's pip config (see ../shared/STACK.md). pip
# compiles the installed packages but not dapt's editable sources; where
# PYTHONDONTWRITEBYTECODE is set (these machines) every command compiled them again.
install: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --compile -e '.[test]'
	$(BIN)/python -m compileall -q pipelines tokenizer pretrain validation
	touch $(STAMP)

# Both example pipelines end to end (clean, validate, tokenizer, tokenize, plan, train a tiny
# model, register it) with the embedded defaults: Beam in-process, MLflow in a local sqlite
# store, CPU. A second `make demo` finds every stage cached and takes seconds.
DEMO_MLFLOW := sqlite:///$(abspath $(DEMO_OUT))/mlflow.db
# One OpenMP thread: a tiny model's small matrix products gain nothing from a second
# thread, and on a busy 2-core machine spinning threads made training 18x slower.
demo: export OMP_NUM_THREADS ?= 1
demo: install
	mkdir -p $(DEMO_OUT)
	$(BIN)/dapt run examples/finance.yaml --workdir $(DEMO_OUT)/finance --tracking-uri $(DEMO_MLFLOW) --quiet
	$(BIN)/dapt run examples/medical.yaml --workdir $(DEMO_OUT)/medical --tracking-uri $(DEMO_MLFLOW) --quiet
	@echo
	$(BIN)/dapt runs list --limit 2 --tracking-uri $(DEMO_MLFLOW)

# The default suite, then the tests marked slow (real end-to-end runs, browsers, compile);
# CI runs both (.ci/run).
test: install
	$(BIN)/python -m pytest -q -m "not slow" tests
	$(BIN)/python -m pytest -q -m slow tests

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" tests

bench: install
	$(BIN)/python tests/benchmarks/bench_corpus.py
	$(BIN)/python tests/benchmarks/bench_validate.py

bench-tokenizer: install
	$(BIN)/python tests/benchmarks/bench_tokenizer.py --count-scales 1 4 16 32 --repeat 5

bench-train: install
	$(BIN)/python tests/benchmarks/bench_train.py

# DataTrove, the peer, in a venv of its own (its pins clash with ours); writes the JSON
# that bench_corpus.py reads for the ratio.
DT_VENV ?= .venv-datatrove
bench-datatrove:
	test -x $(DT_VENV)/bin/python || $(PYTHON) -m venv $(DT_VENV)
	$(DT_VENV)/bin/python -m pip install -q -r tests/benchmarks/datatrove-requirements.txt
	$(DT_VENV)/bin/python tests/benchmarks/bench_datatrove.py --workers 1 --json tests/benchmarks/datatrove-result.json

clean-demo:
	rm -rf $(DEMO_OUT)
