# SPDF companion book. Two commands:
#   make book    install into .venv, then render the published book (book/) into _build/html/;
#                with PROFILE=..., execute the chapters first (see below)
#   make test    install, then unit tests, every chapter at PROFILE=smoke, headless-browser check
# Variables (see README.md):
#   PROFILE=gpu            execute every chapter into book/ (the published book) and render _build/html/
#   PROFILE=smoke|cpu      execute into _build/<profile>/book/, render _build/<profile>/_build/html/
#   CHAPTER=NN  FROM=NN    only chapter NN / chapter NN and every later one
#   FORCE=1                recompute every result, cached and committed (FORCE accepts only 1 or 0)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed on its own first, pinned, so that `pip install -e .` never picks another build.
# On a machine that needs a specific wheel index, pass e.g. TORCH_PIP_ARGS="--index-url https://...".
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
STAMP := $(VENV)/.spdf-install-stamp

PROFILE ?=
CHAPTER ?=
FROM ?=
FORCE ?=
export FORCE
# Every data set is read from local files; any hidden call to the Hugging Face Hub fails fast.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

RUN_ARGS := $(strip $(if $(strip $(PROFILE)),--profile $(strip $(PROFILE))) $(if $(strip $(CHAPTER)),--chapter $(strip $(CHAPTER))) $(if $(strip $(FROM)),--from $(strip $(FROM))))

.PHONY: help install chromium java book html test clean

help:
	@echo "make book                          render the published book (book/) into _build/html/; executes nothing"
	@echo "make book PROFILE=gpu              execute every chapter into book/ (the published book), render _build/html/"
	@echo "make book PROFILE=smoke|cpu        execute into _build/<profile>/book/, render _build/<profile>/_build/html/"
	@echo "          [CHAPTER=NN | FROM=NN]   only chapter NN, or chapter NN and every later one"
	@echo "          [FORCE=1]                recompute every result, cached and committed"
	@echo "make test                          unit tests, all chapters at smoke, browser check"
	@echo "make html                          render _build/html/ from the notebooks in book/ (same as plain make book)"
	@echo "make clean                         remove _build/ (keeps .venv, book/, tables/, .cache/)"

install: $(STAMP)

# The stamp is newer than pyproject.toml once the install succeeded; a second run skips it.
$(STAMP): pyproject.toml
	@if [ ! -x "$(PY)" ]; then echo "Creating the virtual environment $(VENV)"; $(PYTHON) -m venv "$(VENV)"; fi
	"$(PY)" -m pip install --quiet "$(TORCH_SPEC)" $(TORCH_PIP_ARGS)
	"$(PY)" -m pip install --quiet -e .
	@touch "$@"

# The browser check drives Debian's chromium through the playwright package (no browser download).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "Installing the Debian package chromium (needed by the browser check)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update && $$SUDO apt-get install -y chromium; \
	fi

# METEOR 1.5 and the PTB tokenizer of chapter 06's official metric suites are Java programs run offline.
java:
	@if ! command -v java >/dev/null 2>&1; then \
	  echo "Installing the Debian package default-jre-headless (METEOR and the PTB tokenizer, chapter 06)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO mkdir -p /usr/share/man/man1; \
	  $$SUDO apt-get update && $$SUDO apt-get install -y default-jre-headless; \
	fi

book: install java
	"$(PY)" -m spdf_lib.book build $(RUN_ARGS)

html: install
	"$(PY)" -m spdf_lib.book render --book-dir book --output .

test: install chromium java
	"$(PY)" -m pytest

clean:
	rm -rf _build
