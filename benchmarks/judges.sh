#!/usr/bin/env bash
# docs/QUALITY.md's "Judges" rows: the guidance sweep with every judge, the teacher's best setting,
# and the quality bar of the distilled default, on the CPU with ONNX Runtime.
#
#   benchmarks/judges.sh DATA_ROOT OUT_DIR [ROW ...]
#
# Each row is `ddpm-deploy evaluate --json` (classifier FD, the two-sample test raw and with the
# background floor, precision/recall, pixel-PCA FD, each with its real-vs-real floor) written to
# OUT_DIR/<row>.json; nothing is written for a row that fails. Rows run one after another. Every
# row: Fashion-MNIST, a random class per image drawn from (seed, i), seed 0.
set -u
data=${1:?usage: judges.sh DATA_ROOT OUT_DIR [ROW ...]}
out=${2:?usage: judges.sh DATA_ROOT OUT_DIR [ROW ...]}
shift 2
cli=${DDPM_DEPLOY_CLI:-ddpm-deploy}
teacher=${TEACHER:-fashion_mnist}   # the teacher: the shipped residual UNet
student=${STUDENT:-runs/student.onnx}   # a student from `ddpm-deploy distill`, exported
mkdir -p "$out"

declare -A ROWS NS
# the guidance sweep at the sampler of the teacher (DPM-Solver++(2M), 20 steps), n = 2,000
for w in 1 1.5 2 3; do
    ROWS[g${w/./}_dpm20]="--model $teacher --sampler dpm++2m --steps 20 --guidance $w" NS[g${w/./}_dpm20]=2000
done
# the teacher's best setting found (the aim): DDIM 100 steps at guidance 1
ROWS[g1_ddim100]="--model $teacher --sampler ddim --steps 100 --guidance 1" NS[g1_ddim100]=2000
# the quality bar, n = 5,000, same seeds and classes: teacher at the chosen guidance against the student
ROWS[bar_teacher]="--model $teacher --sampler dpm++2m --steps 20 --guidance 1" NS[bar_teacher]=5000
ROWS[bar_student]="--model $student" NS[bar_student]=5000
# the teacher's own DDIM at the student's four timesteps, without distillation
ROWS[bar_teacher_ddim4]="--model $teacher --sampler ddim --steps 4 --spacing trailing --guidance 1" NS[bar_teacher_ddim4]=5000
# the best training-free setting (docs/QUALITY.md, "Training-free solvers"): 8 calls, guidance 1
ROWS[bar_edm8]="--model $teacher --sampler dpm++2m --steps 8 --spacing edm --guidance 1" NS[bar_edm8]=5000
# MNIST at the new defaults (the old ones measured FD 40.3 at guidance 2, 39.6 at 1; n = 2,000)
ROWS[mnist_edm8]="--model mnist --sampler dpm++2m --steps 8 --spacing edm --guidance 1" NS[mnist_edm8]=2000
ROWS[bar_teacher_g2]="--model $teacher --sampler dpm++2m --steps 20 --guidance 2" NS[bar_teacher_g2]=5000
ORDER=(g1_dpm20 g15_dpm20 g2_dpm20 g3_dpm20 bar_student bar_teacher bar_teacher_ddim4 bar_edm8 mnist_edm8 g1_ddim100 bar_teacher_g2)

rows=("$@")
[ ${#rows[@]} -eq 0 ] && rows=("${ORDER[@]}")
for row in "${rows[@]}"; do
    [ -n "${ROWS[$row]:-}" ] || { echo "unknown row $row; choose from ${ORDER[*]}" >&2; exit 2; }
    echo "== $row: evaluate ${ROWS[$row]} -n ${NS[$row]}" >&2
    # shellcheck disable=SC2086
    if $cli evaluate ${ROWS[$row]} -n "${NS[$row]}" --class random --batch 500 --seed 0 \
        --data-root "$data" --json > "$out/.$row.json"; then
        mv "$out/.$row.json" "$out/$row.json"
    else
        rm -f "$out/.$row.json"
        echo "row $row failed" >&2
    fi
done
