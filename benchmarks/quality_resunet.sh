#!/usr/bin/env bash
# docs/QUALITY.md's rows for the shipped residual UNets, on the CPU with ONNX Runtime.
#
#   benchmarks/quality_resunet.sh DATA_ROOT OUT_DIR [ROW ...]
#
# Every row is `ddpm-deploy evaluate --json` on a shipped model, written to OUT_DIR/<row>.json
# (nothing is written for a row that fails). Without ROW arguments every row runs, one after
# another, so their wall times do not disturb each other. The sample counts are what a 2-core CPU
# affords: n = 10,000 for the headline rows, n = 2,000 for class accuracy (200 per class),
# n = 1,000 for the guidance and guidance-1 sampler sweeps and n = 2,000 for the sampler sweep at
# the default guidance; FDs compare only with rows of the same n.
# Sampler settings not named here are the `evaluate` defaults (the `sample` defaults).
set -u
data=${1:?usage: quality_resunet.sh DATA_ROOT OUT_DIR [ROW ...]}
out=${2:?usage: quality_resunet.sh DATA_ROOT OUT_DIR [ROW ...]}
shift 2
cli=${DDPM_DEPLOY_CLI:-ddpm-deploy}
# Overrides for other machines, e.g. on a GPU with the checkpoints the ONNX files came from:
#   EVAL="--backend torch --device cuda" FASHION=models/fashion_mnist/best.safetensors \
#   MNIST=models/mnist/best.safetensors REFERENCE=models/fashion_mnist_reference/best.safetensors N=10000
fashion=${FASHION:-fashion_mnist}
mnist=${MNIST:-mnist}
reference=${REFERENCE:-fashion_mnist_reference}
mkdir -p "$out"
# EMA or raw weights: the training checkpoint's raw weights, exported to a temporary file. The repo
# ships EMA weights only (models/*/model.safetensors); the full checkpoint (EMA + raw, 6 MB) is kept
# outside it, in ../shared/checkpoints/ on the project's machines: point RAW_CHECKPOINT at yours.
raw_checkpoint=${RAW_CHECKPOINT:-../shared/checkpoints/fashion_mnist/model.safetensors}
raw="${TMPDIR:-/tmp}/ddpm_deploy_fashion_raw.onnx"

declare -A ROWS NS
# headline rows: what `sample` draws with no options (a random class per image at the default
# guidance), n = 10,000; and the null label (the model's unconditional branch) beside them
ROWS[fashion]="--model $fashion" NS[fashion]=10000
ROWS[mnist]="--model $mnist" NS[mnist]=10000
ROWS[fashion_null10k]="--model $fashion --class none" NS[fashion_null10k]=10000
ROWS[mnist_null10k]="--model $mnist --class none" NS[mnist_null10k]=10000
# the asked class, at the default guidance
ROWS[fashion_cond]="--model $fashion --class all" NS[fashion_cond]=2000
ROWS[mnist_cond]="--model $mnist --class all" NS[mnist_cond]=2000
# unconditional sampling two ways, n = 2,000: the null label, or a random class per image (p(y) p(x|y))
ROWS[fashion_null2k]="--model $fashion --class none" NS[fashion_null2k]=2000
ROWS[fashion_rand1]="--model $fashion --class random --guidance 1" NS[fashion_rand1]=2000
ROWS[fashion_rand2]="--model $fashion --class random --guidance 2" NS[fashion_rand2]=2000
ROWS[mnist_null2k]="--model $mnist --class none" NS[mnist_null2k]=2000
ROWS[mnist_rand1]="--model $mnist --class random --guidance 1" NS[mnist_rand1]=2000
ROWS[mnist_rand2]="--model $mnist --class random --guidance 2" NS[mnist_rand2]=2000
# guidance sweeps, n = 1,000
ROWS[fashion_g0]="--model $fashion --class all --guidance 0" NS[fashion_g0]=1000
ROWS[fashion_g1]="--model $fashion --class all --guidance 1" NS[fashion_g1]=1000
ROWS[fashion_g2]="--model $fashion --class all --guidance 2" NS[fashion_g2]=1000
ROWS[fashion_g3]="--model $fashion --class all --guidance 3" NS[fashion_g3]=1000
ROWS[fashion_g5]="--model $fashion --class all --guidance 5" NS[fashion_g5]=1000
ROWS[mnist_g0]="--model $mnist --class all --guidance 0" NS[mnist_g0]=1000
ROWS[mnist_g1]="--model $mnist --class all --guidance 1" NS[mnist_g1]=1000
ROWS[mnist_g2]="--model $mnist --class all --guidance 2" NS[mnist_g2]=1000
ROWS[mnist_g3]="--model $mnist --class all --guidance 3" NS[mnist_g3]=1000
ROWS[mnist_g5]="--model $mnist --class all --guidance 5" NS[mnist_g5]=1000
# sampler sweep (Fashion-MNIST, a random class per image at guidance 1: one network call per
# image and step), n = 1,000: quality against network calls
ROWS[s_dpm5]="--model $fashion --class random --guidance 1 --sampler dpm++2m --steps 5" NS[s_dpm5]=1000
ROWS[s_dpm10]="--model $fashion --class random --guidance 1 --sampler dpm++2m --steps 10" NS[s_dpm10]=1000
ROWS[s_dpm20]="--model $fashion --class random --guidance 1 --sampler dpm++2m --steps 20" NS[s_dpm20]=1000
ROWS[s_dpm50]="--model $fashion --class random --guidance 1 --sampler dpm++2m --steps 50" NS[s_dpm50]=1000
ROWS[s_ddim10]="--model $fashion --class random --guidance 1 --sampler ddim --steps 10" NS[s_ddim10]=1000
ROWS[s_ddim20]="--model $fashion --class random --guidance 1 --sampler ddim --steps 20" NS[s_ddim20]=1000
ROWS[s_ddim50]="--model $fashion --class random --guidance 1 --sampler ddim --steps 50" NS[s_ddim50]=1000
ROWS[s_ddpm20]="--model $fashion --class random --guidance 1 --sampler ddpm --steps 20" NS[s_ddpm20]=1000
ROWS[s_ddpm50]="--model $fashion --class random --guidance 1 --sampler ddpm --steps 50" NS[s_ddpm50]=1000
ROWS[s_ddpm100]="--model $fashion --class random --guidance 1 --sampler ddpm --steps 100" NS[s_ddpm100]=1000
ROWS[s_ddpm20p]="--model $fashion --class random --guidance 1 --sampler ddpm --steps 20 --variance posterior" NS[s_ddpm20p]=1000
ROWS[s_ddpm50p]="--model $fashion --class random --guidance 1 --sampler ddpm --steps 50 --variance posterior" NS[s_ddpm50p]=1000
ROWS[s_ddpm100p]="--model $fashion --class random --guidance 1 --sampler ddpm --steps 100 --variance posterior" NS[s_ddpm100p]=1000
ROWS[s_dpm20t]="--model $fashion --class random --guidance 1 --sampler dpm++2m --steps 20 --spacing trailing" NS[s_dpm20t]=1000
# the same at the default guidance 2 (two network calls per image and step, in one batched call),
# n = 2,000 (DPM-Solver++ at 20 steps is the fashion_rand2 row): which sampler and steps are default
ROWS[g2_dpm5]="--model $fashion --class random --guidance 2 --sampler dpm++2m --steps 5" NS[g2_dpm5]=2000
ROWS[g2_dpm10]="--model $fashion --class random --guidance 2 --sampler dpm++2m --steps 10" NS[g2_dpm10]=2000
ROWS[g2_ddim20]="--model $fashion --class random --guidance 2 --sampler ddim --steps 20" NS[g2_ddim20]=2000
ROWS[g2_ddpm20p]="--model $fashion --class random --guidance 2 --sampler ddpm --steps 20 --variance posterior" NS[g2_ddpm20p]=2000
ROWS[g2_ddpm50p]="--model $fashion --class random --guidance 2 --sampler ddpm --steps 50 --variance posterior" NS[g2_ddpm50p]=2000
ROWS[g2_ddpm100p]="--model $fashion --class random --guidance 2 --sampler ddpm --steps 100 --variance posterior" NS[g2_ddpm100p]=2000
ROWS[g2_dpm50]="--model $fashion --class random --guidance 2 --sampler dpm++2m --steps 50" NS[g2_dpm50]=2000
# the default (DPM-Solver++ 20 steps at guidance 2) at n = 1,000, beside the guidance-1 rows and
# DDPM-1000 (s_ddpm1000): the same n, so the FDs compare
ROWS[g2_dpm20_1k]="--model $fashion --class random --guidance 2 --sampler dpm++2m --steps 20" NS[g2_dpm20_1k]=1000
# the rest of the sweep, for a GPU (DDPM-1000 at n = 1,000 takes about an hour on 2 CPU cores)
ROWS[s_ddim5]="--model $fashion --class random --guidance 1 --sampler ddim --steps 5" NS[s_ddim5]=1000
ROWS[s_ddim100]="--model $fashion --class random --guidance 1 --sampler ddim --steps 100" NS[s_ddim100]=1000
ROWS[s_dpm100]="--model $fashion --class random --guidance 1 --sampler dpm++2m --steps 100" NS[s_dpm100]=1000
ROWS[s_ddpm1000]="--model $fashion --class random --guidance 1 --sampler ddpm --steps 1000" NS[s_ddpm1000]=1000
ROWS[g2_dpm100]="--model $fashion --class random --guidance 2 --sampler dpm++2m --steps 100" NS[g2_dpm100]=2000
ROWS[g2_ddim10]="--model $fashion --class random --guidance 2 --sampler ddim --steps 10" NS[g2_ddim10]=2000
ROWS[g2_ddim5]="--model $fashion --class random --guidance 2 --sampler ddim --steps 5" NS[g2_ddim5]=2000
ROWS[g2_ddim50]="--model $fashion --class random --guidance 2 --sampler ddim --steps 50" NS[g2_ddim50]=2000
ROWS[g2_ddpm1000]="--model $fashion --class random --guidance 2 --sampler ddpm --steps 1000" NS[g2_ddpm1000]=2000
# EMA (shipped) against the raw weights of the same checkpoint, n = 1,000
ROWS[fashion_ema1k]="--model $fashion --class none" NS[fashion_ema1k]=1000
ROWS[fashion_raw1k]="--model $raw --class none" NS[fashion_raw1k]=1000
# the seed article's UNet, for comparison at equal n
ROWS[reference_dpm20]="--model $reference --sampler dpm++2m --steps 20" NS[reference_dpm20]=1000
ROWS[reference_ddim50]="--model $reference --sampler ddim --steps 50" NS[reference_ddim50]=1000
ORDER=(fashion mnist fashion_cond mnist_cond fashion_null2k fashion_rand1 fashion_rand2 mnist_null2k
  mnist_rand1 mnist_rand2 fashion_null10k mnist_null10k fashion_g0 fashion_g1 fashion_g2 fashion_g3 fashion_g5
  mnist_g0 mnist_g1 mnist_g2 mnist_g3 mnist_g5 s_dpm5 s_dpm10 s_dpm20 s_dpm50 s_ddim10 s_ddim20
  s_ddim50 s_ddpm20 s_ddpm50 s_ddpm100 s_ddpm20p s_ddpm50p s_ddpm100p s_dpm20t g2_dpm5 g2_dpm10 g2_ddim20 g2_ddpm20p g2_ddpm50p g2_ddpm100p g2_dpm50 g2_dpm20_1k
  reference_dpm20 reference_ddim50 fashion_ema1k fashion_raw1k)
GPU_ONLY=(s_ddim5 s_ddim100 s_dpm100 s_ddpm1000 g2_dpm100 g2_ddim5 g2_ddim10 g2_ddim50 g2_ddpm1000)
# (of these, s_ddpm1000, g2_dpm100 and g2_ddim5/10/50 were run on the 2-core CPU too: docs/QUALITY.md)

for name in "${@:-${ORDER[@]}}"; do
  [ -n "${ROWS[$name]+x}" ] || { echo "unknown row $name; choose from ${ORDER[*]} ${GPU_ONLY[*]}" >&2; exit 2; }
  t0=$SECONDS
  if [ "$name" = fashion_raw1k ] && [ ! -f "$raw" ]; then
    $cli export "$raw_checkpoint" --weights model -o "$raw" >/dev/null
  fi
  # shellcheck disable=SC2086 # the options are split on purpose
  $cli evaluate ${EVAL:---backend ort} --data-root "$data" --json ${ROWS[$name]} -n "${N:-${NS[$name]}}" \
    >"$out/.$name.json" \
    2>"$out/$name.log" && mv "$out/.$name.json" "$out/$name.json" \
    || echo "row $name failed: see $out/$name.log" >&2
  echo "row $name: $((SECONDS - t0)) s"
done
