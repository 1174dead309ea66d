#!/usr/bin/env bash
# Distil the shipped Fashion-MNIST model on a lent GPU (unverified on a GPU so far: no session that
# ran it had one). On CUDA the teacher runs in PyTorch, not ONNX Runtime. The same command on a
# CPU is the resumable background job README's distill section describes.
#
#   benchmarks/distill_gpu.sh OUT_DIR DATA_ROOT [IMAGES] [STEPS]
#
# DATA_ROOT: a torchvision root holding FashionMNIST/raw (the analytic steps' statistics; a GPU
# machine without the registry needs it carried). Writes OUT_DIR/student.safetensors, card.json,
# history.csv and resume.safetensors (a rerun with a larger IMAGES goes on). Fetch the student and
# judge it on the CPU with `ddpm-deploy export` and `evaluate` (docs/QUALITY.md).
set -euo pipefail
out=${1:?usage: distill_gpu.sh OUT_DIR DATA_ROOT [IMAGES] [STEPS]}
data=${2:?usage: distill_gpu.sh OUT_DIR DATA_ROOT [IMAGES] [STEPS]}
images=${3:-200000}
steps=${4:-2}
python -m ddpm_deploy distill models/fashion_mnist/model.safetensors -o "$out" --device cuda \
    --data-root "$data" --steps "$steps" --analytic 3 --images "$images" --batch-size 128 \
    --save-every 50 --json
