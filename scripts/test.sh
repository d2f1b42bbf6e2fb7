#!/usr/bin/env bash
# Install everything (apt + pip) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
.venv/bin/python -m ruff check amongus tests benchmarks datasets
.venv/bin/python -m pytest -q "$@"
