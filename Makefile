# The README's commands. Everything the tests need comes from `make setup` (packages) and `make test-assets`.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PIN ?= torch==2.13.0
DEB_PACKAGES := libglib2.0-data libgtk2.0-common iso-codes

.PHONY: setup test-assets test test-fresh test-fast bench demo lint clean
DEMO := outputs/demo

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, from the local CPU wheel pin: any other request may pull a multi-GB CUDA build.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_PIN)
	$(BIN)/python -m pip install -q -e ".[dev]"
	# apt-get update only to install these packages: Debian-sourced assets refresh lists of their own (docs/data.md)
	@if [ "$$(id -u)" = 0 ]; then \
		dpkg -s $(DEB_PACKAGES) >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PACKAGES); }; \
	else \
		dpkg -s $(DEB_PACKAGES) >/dev/null 2>&1 || echo "NOTE: the glib/gtk corpora need the Debian packages '$(DEB_PACKAGES)'; run 'sudo apt-get install $(DEB_PACKAGES)' (or run make setup as root)."; \
	fi
	touch $@

# Every asset the test suite uses, fetched here and never by a test (tests/conftest.py fails a test that would):
# all of them, the large ones too (the sixteen Debian prose corpora, about 160 MB of packages; bigbench, a 358 MB
# sdist), and gemma3-270m, whose licence (the Gemma Terms of Use) this target accepts for the test run.
# `make test GATED_TEST_ASSETS=` declines it: the Gemma tests are then skipped, naming the command that runs them.
# A Debian pin missing from the machine's apt lists is found by refreshing a private copy of the lists under
# $ZETT_HOME/apt (docs/data.md): no `apt-get update` first. A network problem shows here, not as a test failure.
GATED_TEST_ASSETS ?= gemma3-270m
test-assets: setup
	$(BIN)/zett-assets fetch --all --include-large
	$(if $(GATED_TEST_ASSETS),$(BIN)/zett-assets fetch --accept-licence $(GATED_TEST_ASSETS))

# ZETT_TEST_ASSETS_READY=1: a slow test that finds an asset missing fails (run by hand, it is skipped naming the fix).
test: test-assets
	ZETT_TEST_ASSETS_READY=1 HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -rs -m "not gpu" tests

# `make test` as on a fresh machine: a throw-away virtual environment and an empty ZETT_HOME under one temporary
# folder, removed when the tests pass (kept for a look when they fail). pip's own download cache is still used.
test-fresh:
	@tmp=$$(mktemp -d -t zett-fresh-XXXXXX) && echo "test-fresh: venv and ZETT_HOME under $$tmp" && \
	if ZETT_HOME=$$tmp/home $(MAKE) --no-print-directory test VENV=$$tmp/venv; then rm -rf "$$tmp"; \
	else echo "test-fresh: failed; its venv and ZETT_HOME are kept in $$tmp" >&2; exit 1; fi

# The unit tier only, with the assets it uses (the large and licence-gated ones are used by slow tests only).
test-fast: setup
	$(BIN)/zett-assets fetch --all
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -rs -m "not slow and not gpu" tests

# `make bench` runs every benchmark; `make bench BENCH=cpu_stage1` runs benchmarks/bench_cpu_stage1.py alone.
BENCH ?=
bench: setup
	@for f in $(if $(BENCH),benchmarks/bench_$(BENCH).py,benchmarks/*.py); do \
		test -f $$f || { echo "no benchmark $$f (see benchmarks/)" >&2; exit 2; }; \
		echo "# $$f" >&2; HF_HUB_OFFLINE=1 $(BIN)/python $$f || exit 1; done

# The README's first command: train a hypernetwork for SmolLM2 on CPU, transfer, evaluate against the original
# tokenizer, FVT and the hypernetwork shipped with zett (zett/hypernets/smollm2-135m), print the table.
demo: setup
	$(BIN)/zett-assets fetch smollm2-135m gpt2 starcoder botchan stdlib-code
	HF_HUB_OFFLINE=1 $(BIN)/zett-train experiment=demo hydra.run.dir=$(DEMO)/train overwrite=true
	HF_HUB_OFFLINE=1 $(BIN)/zett-transfer target_tokenizer=gpt2 method=hypernet \
		hypernet_path=$(DEMO)/train/hypernet output_dir=$(DEMO)/smollm2-gpt2 overwrite=true
	HF_HUB_OFFLINE=1 $(BIN)/zett-eval targets=[gpt2,starcoder] corpora=[botchan,stdlib-code] \
		methods=[original,fvt,shipped,hypernet] hypernet_path=$(DEMO)/train/hypernet max_bytes=8000 \
		output_dir=$(DEMO)/eval overwrite=true
	@echo "plot: $(DEMO)/eval/results.png; transferred model: $(DEMO)/smollm2-gpt2; hypernetwork: $(DEMO)/train/hypernet"

lint: setup
	$(BIN)/ruff check zett tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache outputs
