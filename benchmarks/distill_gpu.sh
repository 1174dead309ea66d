#!/usr/bin/env bash
# Distil the shipped Fashion-MNIST model on a lent GPU (unverified on a GPU so far: the session
# that wrote it had none). On CUDA the teacher's trajectories run in PyTorch, not ONNX Runtime.
#
#   benchmarks/distill_gpu.sh OUT_DIR [TRAJECTORIES] [EPOCHS]
#
# Writes OUT_DIR/student.safetensors, card.json, history.csv and the cached trajectories; fetch
# the student and its card back and measure it on the CPU with benchmarks/judges.sh (bar_student).
set -euo pipefail
out=${1:?usage: distill_gpu.sh OUT_DIR [TRAJECTORIES] [EPOCHS]}
trajectories=${2:-20000}
epochs=${3:-20}
python -m ddpm_deploy distill models/fashion_mnist/model.safetensors -o "$out" --device cuda \
    --trajectories "$trajectories" --epochs "$epochs" --json
