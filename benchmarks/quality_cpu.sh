#!/usr/bin/env bash
# The CPU half of docs/QUALITY.md for the seed article's UNet (fashion_mnist_reference): wall times of every row with ONNX Runtime on this machine, and
# the n=10,000 FD of the cheap rows again on the CPU (they must match the GPU rows within noise).
#
#   benchmarks/quality_cpu.sh DATA_ROOT OUT_DIR
#
# DDIM-10/20/50 run at n=10,000; DDIM-100 and DDPM-1000 at n=1,000 (DDPM-1000 at n=10,000 takes
# over an hour and a half on a 2-core CPU), whose FD is not comparable to n=10,000 figures: only their
# time is used. Rows run one after another so that their times do not disturb each other.
set -u
data=${1:?usage: quality_cpu.sh DATA_ROOT OUT_DIR}
out=${2:?usage: quality_cpu.sh DATA_ROOT OUT_DIR}
cli=${DDPM_DEPLOY_CLI:-ddpm-deploy}
mkdir -p "$out"

row() { # row NAME N [evaluate options...]
  local name=$1 n=$2
  shift 2
  $cli evaluate --backend ort --model fashion_mnist_reference --data-root "$data" -n "$n" --json "$@" >"$out/.$name.json" \
    2>"$out/$name.log" && mv "$out/.$name.json" "$out/$name.json" \
    || echo "row $name failed: see $name.log" >&2
}

row fashion_ddim10 10000 --sampler ddim --steps 10
row fashion_ddim20 10000 --sampler ddim --steps 20
row fashion_ddim50 10000 --sampler ddim --steps 50
row fashion_ddim100 1000 --sampler ddim --steps 100
row fashion_ddpm1000 1000 --sampler ddpm --steps 1000
row fashion_ddpm1000_noclip 1000 --sampler ddpm --steps 1000 --no-clip

# Seed-to-seed noise of FD at n=10,000, on the cheapest row.
row fashion_ddim10_seed1 10000 --sampler ddim --steps 10 --seed 1
row fashion_ddim10_seed2 10000 --sampler ddim --steps 10 --seed 2

# EMA or raw weights: the shipped checkpoint's raw (non-EMA) weights (export needs the export extra).
raw=${TMPDIR:-/tmp}/fashion_raw.onnx
$cli export models/fashion_mnist_reference/best.safetensors --weights model -o "$raw" >/dev/null
row fashion_raw_ddim20 10000 --model "$raw" --sampler ddim --steps 20
row fashion_raw_ddim50 10000 --model "$raw" --sampler ddim --steps 50
row fashion_raw_ddpm1000 1000 --model "$raw" --sampler ddpm --steps 1000 # compare with fashion_ddpm1000 (EMA), also n=1,000
