#!/usr/bin/env bash
# Does the prompt steer? Draw coloured shapes, train on them for a few minutes on the CPU,
# then paint every caption. Each picture must show the right shape in the right colour.
set -euo pipefail
DATA=${DATA:-data/shapes}
RUN=${RUN:-runs/shapes}  # a new run folder: one that holds a run is continued only with --resume
PICTURES=${PICTURES:-$RUN-pictures}  # beside the run: nothing is written into a model's folder
gouache data shapes --out "$DATA" --size 32 --per-caption 64
gouache train --config configs/shapes.toml --data "$DATA" --out "$RUN"
for colour in red green blue yellow; do
  for shape in circle square triangle; do
    gouache generate "$colour $shape" --model "$RUN" -n 4 --out "$PICTURES" --scale 4 >/dev/null
  done
done
echo "pictures in $PICTURES; the training grids are in $RUN/samples"
