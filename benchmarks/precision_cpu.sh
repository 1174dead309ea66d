#!/usr/bin/env bash
# docs/BENCHMARKS.md's precision table: speed and quality cost of int8 (QDQ) and bf16 against fp32,
# per backend, on the shipped Fashion-MNIST model with the default sampler, on this CPU.
#
#   benchmarks/precision_cpu.sh DATA_ROOT OUT_DIR
#
# Writes OUT_DIR/fashion.int8.onnx (with its error report in quantize.txt), bench.json (ms per step
# per backend and precision, all timed alternately in one run) and one evaluate JSON per precision
# (FD at n = 2,000, the same seeds for every row; seed-to-seed noise: seed1 rows), and per-op
# profiles of the fp32 and int8 files (profile_*.txt).
set -u
data=${1:?usage: precision_cpu.sh DATA_ROOT OUT_DIR}
out=${2:?usage: precision_cpu.sh DATA_ROOT OUT_DIR}
cli=${DDPM_DEPLOY_CLI:-ddpm-deploy}
n=${N:-2000}
mkdir -p "$out"
fp32=$(python3 -c "from ddpm_deploy.shipped import shipped_model; print(shipped_model('fashion_mnist'))")
int8="$out/fashion.int8.onnx"

$cli quantize "$fp32" -o "$int8" --data-root "$data" --setting convs --force >"$out/quantize.txt" 2>&1 \
  || { echo "quantize failed: see $out/quantize.txt" >&2; exit 1; }
# One run: every backend and precision alternate round by round, PyTorch eager (the checkpoint the
# ONNX file was exported from) included. Batches 1, 16 and 100 are the issue's; 32 and 200 are what a
# batch of 16 or 100 images costs at the default guidance (one call on the doubled batch).
$cli bench --model "$fp32" --int8-model "$int8" --checkpoint models/fashion_mnist/model.safetensors \
  --backend ort,ort:int8,openvino,openvino:bf16,openvino:int8,torch --batch 1,16,32,100,200 \
  --steps 20 --rounds 3 --json >"$out/.bench.json" 2>"$out/bench.log" && mv "$out/.bench.json" "$out/bench.json"

# Where the time goes, per op type (ONNX Runtime's profiler), fp32 against int8, at batch 32
python3 benchmarks/ort_profile.py --model "$fp32" --batch 32 >"$out/profile_fp32.txt"
python3 benchmarks/ort_profile.py --model "$int8" --batch 32 >"$out/profile_int8.txt"

row() { # row NAME [evaluate options...]
  local name=$1
  shift
  $cli evaluate --data-root "$data" -n "$n" --json "$@" >"$out/.$name.json" 2>"$out/$name.log" \
    && mv "$out/.$name.json" "$out/$name.json" || echo "row $name failed: see $out/$name.log" >&2
}
row ort_fp32 --model "$fp32"
row ort_fp32_seed1 --model "$fp32" --seed 1
row ort_int8 --model "$int8"
row openvino_fp32 --model "$fp32" --backend openvino
row openvino_bf16 --model "$fp32" --backend openvino --precision bf16
row openvino_int8 --model "$int8" --backend openvino
