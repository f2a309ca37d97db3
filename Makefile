# Two entry points for a newcomer: `make demo` and `make test` (both install first).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SHARED ?= ../shared
DEMO_OUT ?= out/demo

.PHONY: install demo test test-fast bench bench-tokenizer bench-train bench-datatrove clean-demo

# Re-installs only when pyproject.toml changed; pip finds torch's CPU build and the
# registry packages through the machine's pip config (see ../shared/STACK.md).
install: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --compile -e '.[test]'
	touch $(STAMP)

# The stages built so far, on both samples: clean, train a fresh tokenizer (a bundle is
# never overwritten), tokenize, validate with token statistics, plan from the tokens.
demo: install
	$(BIN)/dapt corpus clean --config examples/corpora.yaml --output $(DEMO_OUT)/clean
	rm -rf $(DEMO_OUT)/tokenizer
	$(BIN)/dapt tokenizer train $(DEMO_OUT)/clean --vocab-size 8000 --output $(DEMO_OUT)/tokenizer
	$(BIN)/dapt tokenize $(DEMO_OUT)/clean --tokenizer $(DEMO_OUT)/tokenizer --output $(DEMO_OUT)/tokens
	$(BIN)/dapt validate $(DEMO_OUT)/clean --tokens $(DEMO_OUT)/tokens --config examples/corpora.yaml
	$(BIN)/dapt plan --flops 1e17 --tokens-manifest $(DEMO_OUT)/tokens/manifest.json --seq-len 256

test: install
	$(BIN)/python -m pytest -q tests

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" tests

bench: install
	$(BIN)/python tests/benchmarks/bench_corpus.py
	$(BIN)/python tests/benchmarks/bench_validate.py

bench-tokenizer: install
	$(BIN)/python tests/benchmarks/bench_tokenizer.py

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
