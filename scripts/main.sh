#!/usr/bin/env bash
# Install (pip only, no apt) and run the main job on the embedded default, offline.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_APT=0 EXTRAS="${EXTRAS:-test}" bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
.venv/bin/python -m amongus "$@"
