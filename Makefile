# The two commands of a fresh machine: `make run` (main job) and `make test` (the test suite).
PY := .venv/bin/python
DURATION ?= 20

.PHONY: setup run test bench clean
setup:
	@bash scripts/setup_env.sh

run: setup
	$(PY) -m snn_agent.cli run --config config/agent.yaml --duration $(DURATION)

test: setup
	$(PY) -m pytest -q test

# quick runs write to bench/results/quick/; the full results (bench/results/*.json) come from each bench without --quick
bench: setup
	$(PY) bench/conversion.py --quick
	$(PY) bench/backends.py --quick
	$(PY) bench/adaptation.py --quick
	$(PY) bench/paced.py --quick
	$(PY) bench/frame_parts.py --quick

clean:
	rm -rf .venv build install log *.egg-info
