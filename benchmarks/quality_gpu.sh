#!/usr/bin/env bash
# The n=10,000 rows of docs/QUALITY.md, and the MNIST default model's training, on one CUDA GPU.
#
#   benchmarks/quality_gpu.sh DATA_ROOT OUT_DIR
#
# Runs in parallel (each job is one process; the GPU is shared): the MNIST training run and its
# classifier's (train-classifier), then its evaluation; the Fashion-MNIST default checkpoint
# evaluated with DDPM-1000 (with and without x0 clipping) and with DDIM-100/50/20/10. Each evaluation writes OUT_DIR/<row>.json. The torch
# backend runs the same weights as the shipped ONNX file, in fp32 with TF32 off, under the same
# numpy sampler and seeds, so `--backend ort` on a CPU reproduces these rows (slowly).
# Smoke test on a CPU: DEVICE=cpu N=130 EPOCHS=1 CLASSIFIER_EPOCHS=1 TRAIN_LIMIT=512 benchmarks/quality_gpu.sh ...
# The wall times in the JSON files are of jobs sharing one GPU: they are not benchmarks.
set -u
data=${1:?usage: quality_gpu.sh DATA_ROOT OUT_DIR}
out=${2:?usage: quality_gpu.sh DATA_ROOT OUT_DIR}
cli=${DDPM_DEPLOY_CLI:-ddpm-deploy}
fashion=${FASHION_CHECKPOINT:-models/fashion_mnist_reference/best.safetensors}
mkdir -p "$out"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-3} # five processes share the host's cores

row() { # row NAME MODEL [evaluate options...]
  local name=$1 model=$2
  shift 2
  local t0=$SECONDS
  $cli evaluate --backend torch --device "${DEVICE:-cuda}" --model "$model" --data-root "$data" \
    -n "${N:-10000}" --json "$@" >"$out/.$name.json" 2>"$out/$name.log" \
    && mv "$out/.$name.json" "$out/$name.json" || echo "row $name failed: see $name.log" >&2
  echo "row $name: $((SECONDS - t0)) s"
}

(
  t0=$SECONDS
  $cli train-classifier --dataset mnist --data-root "$data" -o "$out/mnist_classifier.onnx" \
    --device "${DEVICE:-cuda}" ${TRAIN_LIMIT:+--limit "$TRAIN_LIMIT"} --epochs "${CLASSIFIER_EPOCHS:-8}" \
    >"$out/mnist_classifier.log" 2>&1 &
  if $cli train --dataset mnist --data-root "$data" --out "$out/mnist" --epochs "${EPOCHS:-20}" \
    --ema 0.999 --seed 0 --device "${DEVICE:-cuda}" --no-download ${TRAIN_LIMIT:+--limit "$TRAIN_LIMIT"} \
    >"$out/mnist_train.log" 2>&1; then
    echo "mnist training: $((SECONDS - t0)) s"
    wait # the classifier
    row mnist_ddpm1000 "$out/mnist/best.safetensors" --classifier "$out/mnist_classifier.onnx" --sampler ddpm --steps 1000
  else
    echo "mnist training failed: see mnist_train.log" >&2
  fi
) &
row fashion_ddpm1000 "$fashion" --sampler ddpm --steps 1000 &
row fashion_ddpm1000_noclip "$fashion" --sampler ddpm --steps 1000 --no-clip &
(
  for steps in 100 50 20 10; do
    row "fashion_ddim$steps" "$fashion" --sampler ddim --steps "$steps"
  done
) &
wait
