#!/bin/bash
# Variant: the separator trained by the classifier loss only (separation weight 0).
set -x
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
cd "$(dirname "$0")/../.." || exit 1  # the repository root
while kill -0 $(cat runs/joint/run3.pid) 2>/dev/null; do sleep 20; done
COMMON="--train-mixtures runs/aasist-finetuned/mix/train.jsonl --val-mixtures runs/joint/dev20.jsonl
  --data-fraction 0.4 --classifier aasist --separator amongus/data/models/convtasnet-16k
  --train-layers last:2 --class-weights spoof=0.1 bonafide=0.9 --learning-rate 1e-4
  --epochs 1 --batch-size 2 --grad-accum-steps 2 --eval-batch-size 2 --num-workers 0
  --log-with none --validate-first --seed 0"
/usr/bin/time -v nice -n 10 .venv/bin/python -m amongus.train $COMMON --joint --separator-lr 1e-4 \
  --separation-loss-weight 0 --classifier-loss-weight 1 --output-dir runs/joint/joint-cm-only
/usr/bin/time -v nice -n 10 .venv/bin/python -m amongus.evaluate runs/h14/mix-corpus-eval/mixtures.jsonl \
  --separator runs/joint/joint-cm-only/separator --classifier runs/joint/joint-cm-only/best \
  --out runs/joint/eval-joint-cm-only --quiet --no-plots
