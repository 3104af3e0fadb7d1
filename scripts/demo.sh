#!/usr/bin/env bash
# untwine quick start: set up, train a small beta-TCVAE on the built-in dSprites for a few
# minutes on CPU, evaluate it with the whole metric suite, write an HTML report, and show
# where everything is.  About 4 minutes on 2 CPU cores after the first install (uses a GPU when there is one).
#
#   bash scripts/demo.sh                 # defaults below
#   STEPS=5000 MODEL=beta_vae HPARAMS="beta=4 learning_rate=5e-4" bash scripts/demo.sh
#
# The recipe (beta-TCVAE, beta 10, Adam 1e-3, 3000 steps of batch 64) was chosen by measurement:
# benchmarks/demo_recipe.py, benchmarks/results/demo_recipe.json.
#
# Running it again continues (or reuses) the same run directory: training resumes from its
# last checkpoint (--resume), so an interrupted demo (Ctrl-C) picks up where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=${MODEL:-beta_tcvae}
STEPS=${STEPS:-3000}
HPARAMS=${HPARAMS:-"beta=10 learning_rate=1e-3"}
DEVICE=${DEVICE:-auto}
OUT=${OUT:-runs/demo-${MODEL}-dsprites}
# sample sizes of the evaluation (the defaults of `untwine evaluate` are dlib's 10000/5000
# and 10000/5000 interventional points, which take longer on a CPU)
NUM_TRAIN=${NUM_TRAIN:-4000}
NUM_TEST=${NUM_TEST:-2000}
INTERVENTIONAL_TRAIN=${INTERVENTIONAL_TRAIN:-200}
INTERVENTIONAL_EVAL=${INTERVENTIONAL_EVAL:-100}

start=$SECONDS
stamp() { printf '\n== [%3ds] %s\n' $((SECONDS - start)) "$*"; }

stamp "setup (scripts/setup.sh: .venv with untwine installed)"
bash scripts/setup.sh
UNTWINE=.venv/bin/untwine

stamp "train $MODEL ($HPARAMS) on built-in dSprites: $STEPS steps, batch 64, device $DEVICE -> $OUT"
# learning_rate 1e-3 (instead of the study's 1e-4) so that a few thousand steps already learn something
SETS=()
for kv in $HPARAMS; do SETS+=(--set "$kv"); done
"$UNTWINE" train "$MODEL" --dataset dsprites --steps "$STEPS" --out "$OUT" --device "$DEVICE" --seed 0 \
    "${SETS[@]}" --set checkpoint_every=500 --set log_every=20 --resume

stamp "evaluate: metric suite on $NUM_TRAIN/$NUM_TEST fresh samples, BetaVAE/FactorVAE scores on $INTERVENTIONAL_TRAIN/$INTERVENTIONAL_EVAL points"
"$UNTWINE" evaluate "$OUT" --num-train "$NUM_TRAIN" --num-test "$NUM_TEST" \
    --interventional-train "$INTERVENTIONAL_TRAIN" --interventional-eval "$INTERVENTIONAL_EVAL" --device "$DEVICE" \
    --compare-representations | tee "$OUT/evaluate.txt"

stamp "report"
"$UNTWINE" report "$OUT" --device "$DEVICE"
REPORT="$OUT/report.html"

stamp "done in $((SECONDS - start))s. Results:"
echo "  run directory   $OUT"
echo "  config          $OUT/config.yaml"
echo "  training log    $OUT/log.csv  (every loss term)"
echo "  checkpoint      $OUT/checkpoints/  (weights: model.safetensors)"
echo "  metrics         $OUT/metrics.json"
echo "  report          $REPORT  (open in a browser)"
echo
# the paragraph `untwine evaluate` ended with: which factor the model put in which latent
sed -n '/^In short:/,$p' "$OUT/evaluate.txt"
echo
echo "  untwine is installed in .venv: run 'source .venv/bin/activate' to put the untwine command on your PATH"
echo "  (or call .venv/bin/untwine), e.g. untwine report $OUT"
echo "  python: import untwine; model = untwine.load('$OUT'); z = model.encode(x)"
