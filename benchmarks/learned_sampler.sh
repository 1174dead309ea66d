#!/usr/bin/env bash
# docs/QUALITY.md, "Fewer calls: analytic steps and a learned sampler": each row is
# `ddpm-deploy evaluate --json` (ONNX Runtime on the CPU, guidance 1, a random class per image,
# seed 0, --batch 500, n = $N, default 2,000) written to OUT_DIR/<model>_<row>.json.
#
#   benchmarks/learned_sampler.sh DATA_ROOT OUT_DIR MODEL LEARNED.onnx [ROW ...]
#
# MODEL is the shipped name (fashion_mnist, mnist); LEARNED.onnx its `learn-sampler` output.
# Rows:
#   default8   the shipped model at today's default: DPM-Solver++(2M), 8 calls, edm spacing
#   free<C>_<K> the learned file's Gaussian statistics, training-free: K analytic steps then C
#              calls on the edm grid of C + K points (DPM-Solver++(2M))
#   learned    the learned file's own sampler (its card's spec)
#   ddim100    the teacher the sampler was fitted to: DDIM, 100 calls, linspace
# TAG (optional) goes into the file names: <model>_<TAG>_<row>.json, for several learned files.
# Rows run one after another, never side by side (2 cores).
set -u
data=${1:?usage: learned_sampler.sh DATA_ROOT OUT_DIR MODEL LEARNED.onnx [ROW ...]}
out=${2:?usage}
model=${3:?usage}
learned=${4:?usage}
shift 4
cli=${DDPM_DEPLOY_CLI:-ddpm-deploy}
n=${N:-2000}
mkdir -p "$out"

rows=("$@")
[ ${#rows[@]} -eq 0 ] && rows=(default8 learned)
for row in "${rows[@]}"; do
  case "$row" in
    default8) args=(--model "$model" --sampler dpm++2m --spacing edm --steps 8) ;;
    learned) args=(--model "$learned") ;;
    ddim100) args=(--model "$model" --sampler ddim --spacing linspace --steps 100) ;;
    free*_*)
      spec=${row#free}
      calls=${spec%_*}
      k=${spec#*_}
      args=(--model "$learned" --sampler dpm++2m --spacing edm --steps $((calls + k)) --analytic "$k") ;;
    *) echo "unknown row $row" >&2; exit 2 ;;
  esac
  t0=$SECONDS
  name="${model}${TAG:+_$TAG}_${row}"
  $cli evaluate --backend ort --data-root "$data" --json --class random --guidance 1 \
    -n "$n" --seed 0 --batch 500 "${args[@]}" \
    >"$out/.$name.json" 2>"$out/$name.log" && mv "$out/.$name.json" "$out/$name.json" \
    || echo "row $name failed: see $out/$name.log" >&2
  echo "row $name: $((SECONDS - t0)) s"
done
