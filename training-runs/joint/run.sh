#!/bin/bash
# Joint vs classifier-only fine-tuning, same data and budget (docs/results.md "Joint fine-tuning").
set -x
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
cd "$(dirname "$0")/../.." || exit 1  # the repository root
COMMON="--train-mixtures runs/aasist-finetuned/mix/train.jsonl --val-mixtures runs/joint/dev20.jsonl
  --data-fraction 0.4 --classifier aasist --separator amongus/data/models/convtasnet-16k
  --train-layers last:2 --class-weights spoof=0.1 bonafide=0.9 --learning-rate 1e-4
  --epochs 1 --batch-size 2 --grad-accum-steps 2 --eval-batch-size 2 --num-workers 0
  --log-with none --validate-first --seed 0"
/usr/bin/time -v nice -n 10 .venv/bin/python -m amongus.train $COMMON --joint --separator-lr 1e-4 \
  --separation-loss-weight 1 --classifier-loss-weight 1 --output-dir runs/joint/joint
/usr/bin/time -v nice -n 10 .venv/bin/python -m amongus.train $COMMON --output-dir runs/joint/classifier-only
for pair in "runs/joint/joint/separator runs/joint/joint/best joint" \
            "amongus/data/models/convtasnet-16k runs/joint/classifier-only/best classifier-only"; do
  set -- $pair
  /usr/bin/time -v nice -n 10 .venv/bin/python -m amongus.evaluate runs/h14/mix-corpus-eval/mixtures.jsonl \
    --separator $1 --classifier $2 --out runs/joint/eval-$3 --quiet --no-plots
done
