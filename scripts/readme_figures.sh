#!/usr/bin/env bash
# Every command behind a figure or table of the README and the documentation (docs/results.md, docs/datasets.md,
# docs/estimators.md, docs/speed.md), in their order; the output root is the only
# argument. Run it again after a kill or a reboot and it goes on where it stopped: runs resume from their
# checkpoints, finished runs are read back, and bench and grad-snr are skipped once their files exist.
#
#   bash scripts/readme_figures.sh OUT            # e.g. OUT=~/iwae-readme (hours on a 2-core CPU)
#   IWAE=/path/to/iwae bash scripts/readme_figures.sh OUT   # another install than .venv's
#
# Each step's start, end and exit code go to OUT/readme_figures.tsv (the published times come from there), and
# the figures the pages show are copied into docs/ at the end. A table whose cells are missing exits 4 and
# names them in its .md; the script carries on with the next step and exits with the number that failed.
set -u

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: bash scripts/readme_figures.sh OUTPUT_ROOT   (the folder for every run, table and figure)" >&2
    exit 2
fi
mkdir -p "$1" || exit 2
OUT=$(cd "$1" && pwd)
REPO=$(cd "$(dirname "$0")/.." && pwd)
IWAE=${IWAE:-$REPO/.venv/bin/iwae}
if [ ! -x "$IWAE" ]; then
    echo "error: $IWAE not found: run \`make install\` first (or set IWAE=/path/to/iwae)" >&2
    exit 2
fi
TIMES=$OUT/readme_figures.tsv
[ -s "$TIMES" ] || printf 'step\tstart_utc\tend_utc\tseconds\texit_code\tcommit\n' > "$TIMES"
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
FAILED=0

step() {  # step NAME ARGS...: run `iwae ARGS... output_root=OUT` (or ROOT=... step ...), timed
    local name=$1 start end rc
    shift
    start=$(date +%s)
    echo "== $name: iwae $* ($(date -u +%FT%TZ))"
    "$IWAE" "$@" "output_root=${ROOT:-$OUT}"
    rc=$?
    end=$(date +%s)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$(date -u -d "@$start" +%FT%TZ)" "$(date -u -d "@$end" +%FT%TZ)" \
        "$((end - start))" "$rc" "$COMMIT" >> "$TIMES"
    [ "$rc" -eq 0 ] || FAILED=$((FAILED + 1))
}

# docs/results.md, the quick profile: make table1's MNIST half (seed 0; its time is the published one), then three seeds
step table1-seed0 table1 'datasets=[mnist]'
# the figures docs/results.md shows are this seed-0 table's (the next step redraws them for three seeds)
for figure in nll_vs_paper learning_curves samples; do
    [ -s "$OUT/tables/quick/$figure.png" ] && cp "$OUT/tables/quick/$figure.png" "$REPO/docs/${figure/samples/samples_quick}.png"
done
step table1-3seeds table1 'datasets=[mnist]' 'seeds=[0,1,2]'
step table2 table2
# docs/datasets.md: binarized MNIST, in its own root (its quick table1.* would replace MNIST's); its files must be in the
# data folder (iwae data download binarized_mnist)
ROOT=$OUT/binarized step binarized table1 'datasets=[binarized_mnist]' 'depths=[1]' 'ks=[50]'
# docs/estimators.md: every registered objective, three seeds; then the gradient SNR of the seed-0 IWAE k=50
step table-extra table-extra
SNR_RUN=$OUT/runs/mnist/L1-iwae-k50/quick-text-paper-sum-seed0
[ -s "$SNR_RUN/grad_snr.csv" ] || step grad-snr grad-snr "run=$SNR_RUN" 'objectives=[iwae,dreg,stl]' 'ks=[1,3,10,30,100]'
# docs/speed.md and docs/gpu-and-lockstep.md: solo steps, groups of 1, 2 and 4, evaluation (nothing else should run)
[ -s "$OUT/bench/bench.json" ] || step bench bench 'group_sizes=[1,2,4]'
# the one-thread steps the table commands' jobs run (docs/results.md: where make table1's time goes)
[ -s "$OUT/bench_1thread/bench/bench.json" ] || ROOT=$OUT/bench_1thread step bench-1thread bench threads=1 \
    'group_sizes=[]' eval_examples=20 min_seconds=1
# docs/results.md and the README's headline, "40 passes": the medium profile (the paper's first four stages, k=5000 on the whole test set), one seed and
# then three (seed 0's runs are reused), in the same root (its nll_vs_passes.png draws the quick runs too; not shown in the docs)
step medium-seed0 table1 profile=medium 'datasets=[mnist]'
step medium-3seeds table1 profile=medium 'datasets=[mnist]' 'seeds=[0,1,2]'
step medium-table2 table2 profile=medium 'seeds=[0,1,2]'

# the gradient SNR figure docs/estimators.md shows
[ -s "$SNR_RUN/grad_snr.png" ] && cp "$SNR_RUN/grad_snr.png" "$REPO/docs/grad_snr.png"
echo "done: $FAILED step(s) did not exit 0; times in $TIMES"
exit "$FAILED"
