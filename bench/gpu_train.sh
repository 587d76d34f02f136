#!/usr/bin/env bash
# Train several reader variants side by side on one GPU, pick the best on SQuAD dev, and pack it for the trip
# back. Made for the lent GPU machine (15 minutes, one call); runs on a CPU too for a smoke test:
#   DEVICE=cpu MAX_EXAMPLES=200 TIME_LIMIT=20 EVAL_LIMIT=40 bash bench/gpu_train.sh /tmp/out
# Needs: python with torch, transformers, tqdm, numpy; SQuAD files in $DATA; writes packed results to $1.
set -u
OUT_DIR=${1:?usage: gpu_train.sh OUT_DIR}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
DATA=${DATA:-.device-carry/squad}
BASE=${BASE:-qa/models/reader}       # continue from the shipped reader: its base fits the 64 MiB trip
TIME_LIMIT=${TIME_LIMIT:-270}        # seconds of training per variant (the schedule decays to zero by then)
MAX_EXAMPLES=${MAX_EXAMPLES:-0}
EVAL_LIMIT=${EVAL_LIMIT:-0}
RUNS=${RUNS:-runs/gpu}
DEADLINE=${DEADLINE:-0}              # seconds this script may take in all (0: no limit): evaluation is cut to fit
MIN_V1_F1=${MIN_V1_F1:-0}            # choose on v2.0 F1 among the variants at least this good on v1.1
WORKERS=${WORKERS:-4}                # tokenising processes per variant
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30 HF_HUB_OFFLINE=1
export PYTHONPATH="$(cd "$(dirname "$0")/.." && pwd)${PYTHONPATH:+:$PYTHONPATH}"   # qa, not installed there
mkdir -p "$OUT_DIR" "$RUNS"
started=$(date +%s)
stamp() { echo "[$(( $(date +%s) - started ))s] $*"; }

# One variant per line: name learning-rate epochs, then the negative shares: other-paragraph cut-sentence
# edited-question negated-question swapped-name impossible-condition (the last four may be left out: 0).
# The first session's run used "a 1e-4 3 0.1 0.1 0; b 1e-4 3 0.25 0.25 0; c 1.5e-4 4 0.2 0.2 0" (c shipped).
VARIANTS=${VARIANTS:-"a 1e-4 3 0.1 0.1 0
b 1e-4 3 0.25 0.25 0
c 1.5e-4 4 0.2 0.2 0"}
VARIANTS=$(tr ';' '\n' <<<"$VARIANTS" | sed 's/^ *//')
first=$(head -n 1 <<<"$VARIANTS" | cut -d' ' -f1)

stamp "device: $($PY -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")')"
while read -r name lr epochs other cut edited negated swapped condition; do
  $PY -m qa.training --train-file "$DATA/train-v1.1.json.gz" --base-model "$BASE" --output-dir "$RUNS/$name" \
    --device "$DEVICE" --learning-rate "$lr" --epochs "$epochs" --other-paragraph-negatives "$other" \
    --cut-sentence-negatives "$cut" --edited-question-negatives "${edited:-0}" \
    --negated-question-negatives "${negated:-0}" --swapped-name-negatives "${swapped:-0}" \
    --impossible-condition-negatives "${condition:-0}" --tokenize-workers "$WORKERS" \
    --time-limit "$TIME_LIMIT" --max-examples "$MAX_EXAMPLES" \
    --checkpoint-every 1000 --log-every 100 >"$RUNS/$name.out" 2>&1 &
done <<<"$VARIANTS"
wait
stamp "training done"
for name in $(cut -d' ' -f1 <<<"$VARIANTS"); do tail -n 3 "$RUNS/$name/train.log" 2>/dev/null; done

# Pack one reader (export to fp16, tar, split in parts the trip back takes) into $OUT_DIR, replacing what is
# there only once the new parts are whole.
pack() {
  local folder=$1
  rm -rf "$RUNS/pack" "$RUNS/parts" && mkdir -p "$RUNS/pack" "$RUNS/parts"
  $PY -c "from qa.training.export import export_reader; export_reader('$folder', '$RUNS/pack/reader')" || return 1
  cp "$folder/../train.log" "$folder/../train_config.json" "$folder/calibration.json" "$RUNS/pack/reader/" 2>/dev/null
  cp "$RUNS/selection.json" "$RUNS/pack/" 2>/dev/null
  for name in $(cut -d' ' -f1 <<<"$VARIANTS"); do
    cp "$RUNS/$name/train.log" "$RUNS/pack/train-$name.log" 2>/dev/null
    cp "$RUNS/$name.out" "$RUNS/$name.eval.out" "$RUNS/pack/" 2>/dev/null
  done
  tar -C "$RUNS/pack" -cf "$RUNS/pack.tar" . && split -b 15m -d "$RUNS/pack.tar" "$RUNS/parts/pack.tar.part" || return 1
  rm -f "$OUT_DIR"/pack.tar.part* && mv "$RUNS"/parts/* "$OUT_DIR"/   # the trip back takes files of at most 16 MiB
  echo "$folder" >"$OUT_DIR/packed.txt"
  stamp "packed $folder"
}
pack "$RUNS/$first/final"   # in case evaluation does not finish in time

eval_timeout=${EVAL_TIMEOUT:-200}
if (( DEADLINE > 0 )); then
  left=$(( DEADLINE - ($(date +%s) - started) - 35 ))   # 35 s kept for a second packing
  (( left < eval_timeout )) && eval_timeout=$left
fi
stamp "evaluating, at most ${eval_timeout}s"
if (( eval_timeout <= 20 )); then stamp "no time left to evaluate: $RUNS/$first/final stays packed"; exit 0; fi
for name in $(cut -d' ' -f1 <<<"$VARIANTS"); do
  timeout "$eval_timeout" $PY bench/select_reader.py "$RUNS/$name/final" --device "$DEVICE" --batch-size 128 \
    --limit "$EVAL_LIMIT" --data "$DATA" --out "$RUNS/$name/selection.json" >"$RUNS/$name.eval.out" 2>&1 &
done
wait
stamp "evaluation done"
$PY bench/select_reader.py "$RUNS"/*/selection.json --min-v1-f1 "$MIN_V1_F1" --out "$RUNS/selection.json" \
  | tee "$OUT_DIR/selection.txt"
best=$($PY -c "import json; print(json.load(open('$RUNS/selection.json'))['best'] or '')" 2>/dev/null)
best=${best:-$RUNS/$first/final}
pack "$best"   # again even when unchanged: now with its calibration and the selection
ls -la "$OUT_DIR"
stamp "done"
