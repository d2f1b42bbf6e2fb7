#!/bin/sh
# Resume (or start) the 8 kHz SepFormer run with --extra-speech (145 training speakers); safe to rerun.
cd "$(dirname "$0")/../.." || exit 1
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
nohup nice -n 10 .venv/bin/python -m amongus.recipes.train_separator \
  --arch sepformer --size small --sample-rate 8000 --real-speech auto --extra-speech \
  --out runs/separator-8k-xs --segment-seconds 2 --batch-size 4 --lr 5e-4 --lr-patience 4 \
  --val-every 250 --n-val-mixtures 64 --threads 1 --max-minutes 60 --no-progress \
  >> runs/separator-8k-xs/nohup.out 2>&1 &
echo "started pid $!"
