#!/bin/bash
# The prepared GPU check (issues 22 and 18), one command for a lent machine:
#   bash benchmarks/gpu_check.sh                 # on the GPU machine, in the repo root
#   DEVICE=cpu ITERS=1 WARMUP=0 N_SAMPLE=100 JOINT=digits bash benchmarks/gpu_check.sh
#                                                # a dry run on a CPU (minutes)
# 1. SVHN seconds per LEBM iteration, batch 100: float32, bf16 (+ channels-last), and bf16
#    with torch.compile of the chains' networks (CUDA graphs) — the goal is <= 20 ms on an
#    H100-class GPU (docs/performance.md);
# 2. the joint multi-layer prior, posterior MCMC against the inference network, SVHN (the
#    CVPR'23 paper's GPU figures: 0.478 vs 0.232 s per iteration);
# 3. prior sampling throughput (60 prior steps + generation): 50,000 samples for an FID.
# Every result is one JSON line in $OUT/gpu_check.jsonl ($OUT: the device tool's output
# folder; else benchmarks/results/gpu); nvidia-smi's view goes beside it. A step that fails
# is recorded as {"failed": ...} and the script goes on, so one broken lever costs one line.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
ITERS=${ITERS:-20}
WARMUP=${WARMUP:-5}
N_SAMPLE=${N_SAMPLE:-10000}
JOINT=${JOINT:-svhn}  # the joint_speed.py family
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
DIR=${OUT:-benchmarks/results/gpu}
mkdir -p "$DIR"
F="$DIR/gpu_check.jsonl"
: > "$F"
(nvidia-smi || echo "no nvidia-smi") > "$DIR/nvidia_smi.txt" 2>&1

run() {  # run NAME CMD...: append the command's last line (its JSON) or a failure record
    local name=$1
    shift
    local log="$DIR/$name.log"
    if "$@" > "$log" 2>&1; then
        tail -n 1 "$log" >> "$F"
    else
        printf '{"failed": "%s", "rc": %d}\n' "$name" $? >> "$F"
    fi
    echo "$name: $(tail -n 1 "$log" | cut -c1-160)"
}

T="$PY benchmarks/bench_train.py --preset svhn --device $DEVICE --iters $ITERS --warmup $WARMUP"
run svhn_float32 $T --set chain_dtype=float32 --set update_dtype=float32 \
    --set channels_last=false --breakdown
run svhn_bf16 $T --set chain_dtype=bfloat16 --set update_dtype=bfloat16 \
    --set channels_last=true --breakdown
run svhn_bf16_compile $T --set chain_dtype=bfloat16 --set update_dtype=bfloat16 \
    --set channels_last=true --set compile=true
run "joint_$JOINT" $PY benchmarks/joint_speed.py --family "$JOINT" --device "$DEVICE" \
    --iters "$ITERS" --warmup "$WARMUP" --twins
run sample_svhn $PY benchmarks/bench_sample.py --preset svhn --device "$DEVICE" \
    --n "$N_SAMPLE" --batch-size 1000
echo "results: $F"
