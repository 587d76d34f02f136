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
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30 HF_HUB_OFFLINE=1
mkdir -p "$OUT_DIR" "$RUNS"
started=$(date +%s)
stamp() { echo "[$(( $(date +%s) - started ))s] $*"; }

# One variant per line: name learning-rate epochs other-paragraph cut-sentence edited-question (negative shares).
# The first session's run used "a 1e-4 3 0.1 0.1 0; b 1e-4 3 0.25 0.25 0; c 1.5e-4 4 0.2 0.2 0" (c shipped).
VARIANTS=${VARIANTS:-"a 1e-4 3 0.1 0.1 0
b 1e-4 3 0.25 0.25 0
c 1.5e-4 4 0.2 0.2 0"}
VARIANTS=$(tr ';' '\n' <<<"$VARIANTS" | sed 's/^ *//')
first=$(head -n 1 <<<"$VARIANTS" | cut -d' ' -f1)

stamp "device: $($PY -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")')"
while read -r name lr epochs other cut edited; do
  $PY -m qa.train --train-file "$DATA/train-v1.1.json.gz" --base-model "$BASE" --output-dir "$RUNS/$name" \
    --device "$DEVICE" --learning-rate "$lr" --epochs "$epochs" --other-paragraph-negatives "$other" \
    --cut-sentence-negatives "$cut" --edited-question-negatives "${edited:-0}" --time-limit "$TIME_LIMIT" --max-examples "$MAX_EXAMPLES" \
    --checkpoint-every 1000 --log-every 100 >"$RUNS/$name.out" 2>&1 &
done <<<"$VARIANTS"
wait
stamp "training done"
for name in $(cut -d' ' -f1 <<<"$VARIANTS"); do tail -n 3 "$RUNS/$name/train.log" 2>/dev/null; done

for name in $(cut -d' ' -f1 <<<"$VARIANTS"); do
  timeout "${EVAL_TIMEOUT:-200}" $PY bench/select_reader.py "$RUNS/$name/final" --device "$DEVICE" --batch-size 128 \
    --limit "$EVAL_LIMIT" --data "$DATA" --out "$RUNS/$name/selection.json" >"$RUNS/$name.eval.out" 2>&1 &
done
wait
stamp "evaluation done"
$PY bench/select_reader.py "$RUNS"/*/selection.json --out "$RUNS/selection.json" | tee "$OUT_DIR/selection.txt"
best=$($PY -c "import json; print(json.load(open('$RUNS/selection.json'))['best'] or '')" 2>/dev/null)
best=${best:-$RUNS/$first/final}   # no evaluation came back: ship the first variant, judged at home
stamp "packing $best"
rm -rf "$RUNS/pack" && mkdir -p "$RUNS/pack"
$PY -c "from qa.train import export_reader; export_reader('$best', '$RUNS/pack/reader')" || exit 1
cp "$best/../train.log" "$best/../train_config.json" "$RUNS/pack/reader/" 2>/dev/null
cp "$best/calibration.json" "$RUNS/pack/reader/" 2>/dev/null
cp "$RUNS/selection.json" "$RUNS/pack/" 2>/dev/null
for name in $(cut -d' ' -f1 <<<"$VARIANTS"); do
  cp "$RUNS/$name/train.log" "$RUNS/pack/train-$name.log" 2>/dev/null
  cp "$RUNS/$name.out" "$RUNS/$name.eval.out" "$RUNS/pack/" 2>/dev/null
done
tar -C "$RUNS/pack" -cf "$RUNS/pack.tar" .
split -b 15m -d "$RUNS/pack.tar" "$OUT_DIR/pack.tar.part"   # the trip back takes files of at most 16 MiB
ls -la "$OUT_DIR"
stamp "done"
