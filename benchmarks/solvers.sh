#!/usr/bin/env bash
# docs/QUALITY.md, "Training-free solvers at 5, 8, 10 calls": DPM-Solver++(2M) against
# DPM-Solver++(3M) and iPNDM, each with the linspace, logsnr and edm (rho = 7) spacings, at 5, 8
# and 10 network calls per image, on the shipped Fashion-MNIST model with ONNX Runtime on the CPU.
#
#   benchmarks/solvers.sh DATA_ROOT OUT_DIR [ROW ...]
#
# Every row is `ddpm-deploy evaluate --json` at guidance 1 (one network call per image and step, so
# --steps is the call count), a random class per image, n = 2,000, seed 0, --batch 500, written to
# OUT_DIR/<row>.json (nothing for a row that fails). Rows run one after another, never side by
# side. Row names: <sampler>_<spacing>_<calls>, sampler dpm2m, dpm3m or ipndm, e.g. dpm3m_edm_8.
# Without ROW arguments every row runs, the 5-call rows first, then 10, then 8.
# `python benchmarks/solvers_table.py OUT_DIR` prints the table.
#
# EXTRA="--no-two-sample" skips the classifier two-sample test, which trains 12 small discriminators
# per row (about 10 minutes a row on the busy 2-core CPU; generation takes 1-3 minutes); FD,
# precision/recall and the pixel-PCA FD remain. The JSON records which judges ran.
set -u
data=${1:?usage: solvers.sh DATA_ROOT OUT_DIR [ROW ...]}
out=${2:?usage: solvers.sh DATA_ROOT OUT_DIR [ROW ...]}
shift 2
cli=${DDPM_DEPLOY_CLI:-ddpm-deploy}
model=${FASHION:-fashion_mnist}
n=${N:-2000}
mkdir -p "$out"

declare -A SAMPLER=([dpm2m]=dpm++2m [dpm3m]=dpm++3m [ipndm]=ipndm)
ORDER=()
for calls in 5 10 8; do
  for s in dpm2m dpm3m ipndm; do
    for spacing in linspace logsnr edm; do
      ORDER+=("${s}_${spacing}_${calls}")
    done
  done
done

for name in "${@:-${ORDER[@]}}"; do
  IFS=_ read -r s spacing calls <<<"$name"
  if [ -z "${SAMPLER[$s]+x}" ] || [[ ! "$spacing" =~ ^(linspace|logsnr|edm|trailing)$ ]] \
    || [[ ! "$calls" =~ ^[0-9]+$ ]]; then
    echo "unknown row $name; rows are <dpm2m|dpm3m|ipndm>_<linspace|logsnr|edm|trailing>_<calls>" >&2
    exit 2
  fi
  t0=$SECONDS
  # shellcheck disable=SC2086 # EXTRA is split on purpose
  $cli evaluate --backend ort --data-root "$data" --json --model "$model" --class random \
    --guidance 1 --sampler "${SAMPLER[$s]}" --spacing "$spacing" --steps "$calls" \
    -n "$n" --seed 0 --batch 500 ${EXTRA:-} \
    >"$out/.$name.json" 2>"$out/$name.log" && mv "$out/.$name.json" "$out/$name.json" \
    || echo "row $name failed: see $out/$name.log" >&2
  echo "row $name: $((SECONDS - t0)) s"
done
