#!/usr/bin/env bash
# For a session with a GPU: train both shipped residual UNets longer than a CPU can, then measure
# every row of benchmarks/quality_resunet.sh at n = 10,000 with the torch backend on the GPU.
#
#   benchmarks/resunet_gpu.sh DATA_ROOT OUT_DIR
#
# Writes OUT_DIR/{fashion_mnist,mnist}/ (checkpoints, loss.csv, card.json) and OUT_DIR/quality/*.json.
# Not yet run on a GPU (written on a CPU-only machine; smoke-tested there with DEVICE=cpu EPOCHS=1
# TRAIN_LIMIT=256 N=200 ROWS="fashion mnist_cond"). Ship the results with `ddpm-deploy export`.
set -u
data=${1:?usage: resunet_gpu.sh DATA_ROOT OUT_DIR}
out=${2:?usage: resunet_gpu.sh DATA_ROOT OUT_DIR}
cli=${DDPM_DEPLOY_CLI:-ddpm-deploy}
device=${DEVICE:-cuda}
mkdir -p "$out"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}

for ds in fashion_mnist mnist; do # the same settings as the CPU-trained shipped models, longer
  $cli train --dataset "$ds" --arch resunet --cond --ema 0.999 --lr 2e-3 --warmup 200 \
    --batch-size 128 --epochs "${EPOCHS:-40}" --seed 0 --device "$device" --no-download \
    ${TRAIN_LIMIT:+--limit "$TRAIN_LIMIT"} --data-root "$data" --out "$out/$ds" \
    >"$out/train_$ds.log" 2>&1 &
done
wait
echo "training done: $(grep -h -c '' "$out"/*/loss.csv | tr '\n' ' ')lines of loss.csv"

# every row but the EMA/raw pair (it exports ONNX for the CPU), plus the rows a CPU cannot afford
ALL_ROWS="fashion mnist fashion_cond mnist_cond fashion_g0 fashion_g1 fashion_g2 fashion_g3 fashion_g5
  mnist_g0 mnist_g1 mnist_g2 mnist_g3 mnist_g5 s_ddim5 s_dpm5 s_dpm10 s_dpm20 s_dpm50 s_dpm100
  s_ddim10 s_ddim20 s_ddim50 s_ddim100 s_ddpm20 s_ddpm50 s_ddpm100 s_ddpm1000 reference_dpm20
  reference_ddim50 g2_dpm5 g2_dpm10 g2_dpm50 g2_dpm100 g2_ddim5 g2_ddim20 g2_ddim50 g2_ddpm20p g2_ddpm50p
  g2_ddpm100p g2_ddpm1000"
EVAL="--backend torch --device $device" FASHION="$out/fashion_mnist/best.safetensors" \
  MNIST="$out/mnist/best.safetensors" REFERENCE=models/fashion_mnist_reference/best.safetensors \
  N="${N:-10000}" benchmarks/quality_resunet.sh "$data" "$out/quality" ${ROWS:-$ALL_ROWS}
