#!/bin/bash
# One command on a GPU machine with no network: the GPU table of benchmarks/speed.py and the real
# training loop with its GPU utilisation, inside BUDGET seconds; everything lands under $OUT.
# Run in the repository root there, with .gpu/ (the packed encoder and the data, made by
# maintainers/remote_gpu.py pack) and .whl/ (the diffusers and importlib_metadata wheels, for the
# equal-work rows) carried along:
#   OUT=... BUDGET=470 maintainers/gpu_speed_job.sh
# Three phases, each under its own timeout:
#   1. compile every compiled row at once, in parallel processes (WARM_P at a time), so that the
#      timing pass finds inductor's on-disk caches warm; meanwhile the captions are encoded once
#      (gouache data embed) and a one-step `gouache train` compiles the real loop's graph;
#   2. the table, row after row, the real loop first (speed.py writes the JSON after each row,
#      so a pass cut off by its timeout keeps what it measured);
#   3. the loop's log.csv and last sample grid to $OUT.
# env: BUDGET seconds for the whole job (default 470); DEVICE (cuda); DATA (.gpu/data/emoji64);
#      CONFIG the loop's recipe (configs/emoji64-fast.toml); LOOP_MIN the loop's --max-minutes (1.5);
#      ROWS the table's rows, COMPILED the rows compiled in phase 1 ("" none: below); WARM_P parallel
#      compiles (6); WARM_S phase 1's time limit (180);
#      WARM_LOOP=0 skips the loop's warm-up run; QUICK=1 a tiny run for a test on the CPU
#      (DEVICE=cpu: tiny networks, 2 images a step).
export PYTHONUNBUFFERED=1
T0=$(date +%s)
: "${OUT:?set OUT to the folder whose files come back}"
BUDGET=${BUDGET:-470} DEVICE=${DEVICE:-cuda} DATA=${DATA:-.gpu/data/emoji64}
CONFIG=${CONFIG:-configs/emoji64-fast.toml} LOOP_MIN=${LOOP_MIN:-1.5} WARM_P=${WARM_P:-6} WARM_S=${WARM_S:-180}
COMPILED=${COMPILED-base-1024-default,pair-gouache-default,pair-diffusers-default,wide-512-default,base-1024-reduce-overhead}
# the most wanted first: a pass cut off by its timeout loses the last rows
ROWS=${ROWS:-peak,loop,base-1024-eager,base-256-eager,pair-gouache-eager,pair-diffusers-eager,base-1024-default,pair-gouache-default,pair-diffusers-default,wide-512-default,base-1024-reduce-overhead}
LOG=$OUT/job.log SITE=$(mktemp -d) RUN=$(mktemp -d)/loop-run
Q=(); [ -n "$QUICK" ] && Q=(--quick)
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
  python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available())"
  nproc; free -g | head -2
} > "$LOG" 2>&1
if ls .whl/*.whl > /dev/null 2>&1; then  # diffusers for the equal-work rows; nothing else is installed
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE/whl" .whl/*.whl >> "$LOG" 2>&1
fi
export PYTHONPATH=$SITE/whl:$SITE:$PWD  # the repository is not installed there
if [ -d .gpu ]; then python3 maintainers/remote_gpu.py unpack .gpu --site "$SITE" >> "$LOG" 2>&1 || { cat "$LOG"; exit 1; }; fi
python3 -c "import diffusers; print('diffusers', diffusers.__version__)" >> "$LOG" 2>&1
export TORCHINDUCTOR_COMPILE_THREADS=${TORCHINDUCTOR_COMPILE_THREADS:-4} PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
SPEED=(python3 benchmarks/speed.py --device "$DEVICE" --table gpu "${Q[@]}")

echo "phase 1: warm compiles, $(left) s left" | tee -a "$LOG"
mkdir -p "$OUT/warm"
P1=$(date +%s)  # phase 1 ends by P1 + WARM_S, whatever hangs
( timeout "$WARM_S" python3 -m gouache data embed "$DATA" > "$OUT/warm/embed.log" 2>&1
  rest=$(( WARM_S - ($(date +%s) - P1) ))
  [ "${WARM_LOOP:-1}" = 1 ] && (( rest > 5 )) && timeout "$rest" python3 -m gouache train --config "$CONFIG" --data "$DATA" --out "$(mktemp -d)/warm" \
      --device "$DEVICE" --max-minutes 0.01 > "$OUT/warm/loop.log" 2>&1 ) &
LOOPWARM=$!
[ -n "$COMPILED" ] && echo "$COMPILED" | tr ',' '\n' | xargs -P "$WARM_P" -I{} timeout "$WARM_S" "${SPEED[@]}" \
    --rows {} --warm-only > /dev/null 2> "$OUT/warm/rows.log"
wait "$LOOPWARM"
tail -3 "$OUT/warm/rows.log" >> "$LOG"
echo "phase 1 done after $(( $(date +%s) - T0 )) s" | tee -a "$LOG"

echo "phase 2: the table, $(left) s left" | tee -a "$LOG"
timeout -k 10 $(( $(left) - 25 )) "${SPEED[@]}" --rows "$ROWS" --loop-data "$DATA" --loop-config "$CONFIG" \
    --loop-minutes "$LOOP_MIN" --loop-out "$RUN" --json "$OUT/gpu_speed.json" > "$OUT/gpu_speed.md" 2> "$OUT/gpu_speed.log"
echo "table exit $? after $(( $(date +%s) - T0 )) s" | tee -a "$LOG"

cp "$RUN/log.csv" "$OUT/loop_log.csv" 2>/dev/null
cp "$(ls "$RUN"/samples/*.png 2>/dev/null | tail -1)" "$OUT/loop_samples.png" 2>/dev/null
python3 - "$OUT/gpu_speed.json" >> "$LOG" 2>&1 <<'EOF' || true
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
loop = rows.get("loop", {})
print("loop:", {k: loop.get(k) for k in ("steady_images_per_s", "whole_images_per_s", "gpu_util_mean", "mfu", "exit")})
EOF
( cd "$OUT" && tar czf warm.tgz warm && rm -rf warm )
cat "$OUT/gpu_speed.md"
tail -5 "$LOG"
echo "done after $(( $(date +%s) - T0 )) s; $(find "$OUT" -type f | wc -l) files under \$OUT (8 come back)"
[ -s "$OUT/gpu_speed.json" ]  # the status: the table was (at least partly) written
