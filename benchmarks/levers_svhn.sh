#!/bin/bash
# Lever-by-lever SVHN iteration time, one process per setting, same machine state.
cd "$(dirname "$0")/.."
OUT=benchmarks/results/levers_svhn.jsonl
: > $OUT
B="${PYTHON:-.venv/bin/python} benchmarks/bench_train.py --preset svhn --iters 4 --warmup 1 --threads 2"
$B --set chain_dtype=float32 --set channels_last=false --set update_dtype=float32 --breakdown | tail -1 >> $OUT
$B --set chain_dtype=float32 --set channels_last=true --set update_dtype=float32 | tail -1 >> $OUT
$B --set chain_dtype=bfloat16 --set channels_last=false --set update_dtype=float32 | tail -1 >> $OUT
$B --set chain_dtype=bfloat16 --set channels_last=true --set update_dtype=float32 | tail -1 >> $OUT
$B --set chain_dtype=bfloat16 --set channels_last=true --set update_dtype=bfloat16 --breakdown | tail -1 >> $OUT
