#!/bin/sh
# Resume (or start) the 16 kHz real-speech separator run; safe to rerun: it continues.
cd "$(dirname "$0")/../.." || exit 1
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
nohup nice -n 10 .venv/bin/python -m amongus.recipes.train_separator \
  --arch convtasnet --size medium --sample-rate 16000 --real-speech auto \
  --out runs/separator-16k --segment-seconds 2 --batch-size 4 --lr 1e-3 --lr-patience 4 \
  --val-every 250 --n-val-mixtures 64 --threads 1 --max-minutes 30 --no-progress \
  >> runs/separator-16k/nohup.out 2>&1 &
echo "started pid $!"
