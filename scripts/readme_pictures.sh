#!/usr/bin/env bash
# The pictures README.md and docs/MODELS.md show, drawn again with the shipped models (each folder
# keeps its run.json).
# Rerun after anything that changes what `sample` draws (the noise, a model, a default sampler).
set -euo pipefail
cd "$(dirname "$0")/.."
S=".venv/bin/ddpm-deploy sample --seed 0 --scale 2"
$S -n 64 --frames 40 --out docs
$S --class all -n 10 --frames 40 --out docs/classes
$S --model mnist -n 64 --frames 40 --out docs/mnist
$S --model mnist --class all -n 10 --frames 40 --out docs/mnist/classes
$S --model emoji --class all -n 8 --frames 100 --out docs/emoji/g1
$S --model emoji --class all -n 8 --guidance 3 --frames 40 --out docs/emoji/g3
$S --model fashion_mnist_reference -n 64 --steps 20 --frames 40 --out docs/reference/dpm20
