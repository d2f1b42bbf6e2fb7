#!/bin/bash
set -x
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
cd "$(dirname "$0")/../.." || exit 1  # the repository root
while kill -0 $(cat runs/joint/run.pid) 2>/dev/null; do sleep 20; done
/usr/bin/time -v nice -n 10 .venv/bin/python -m amongus.evaluate runs/h14/mix-corpus-eval/mixtures.jsonl \
  --separator amongus/data/models/convtasnet-16k --classifier runs/joint/classifier-only/final \
  --out runs/joint/eval-classifier-only-final --quiet --no-plots
