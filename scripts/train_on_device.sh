#!/usr/bin/env bash
# Train the LGG segmenters on a lent GPU machine (JAX, no TensorFlow), three at once on one GPU.
# Measured on an H200 (2026-11-26): unet at 256 px, batch 32, ~28 ms a step, 2-3 s an epoch of
# 2,769 slices after ~70 s of compilation, so 7 minutes give the three models ~50-100 epochs each.
#
# Run through the device tool from the repository root, carrying .whl (Keras and its two missing
# dependencies that machine lacks) and .pack (made by scripts/pack_for_device.py):
#     bash scripts/train_on_device.sh MINUTES
# Models and cards land in $OUT/models/<name>/, the three logs in $OUT/train.log. The cards'
# validation figures are measured on the JPEG copy; measure them again on the original folder
# with scripts/rescore_card.py before committing, and copy into models/ only what beats the model
# there (the cards come back with "default": false; mark the task's default by hand).
set -u
MINUTES=${1:-6}
PY=${PY:-python3}
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .device/site .whl/*.whl || exit 1
  export PYTHONPATH="$PWD/.device/site"
fi
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L 2>/dev/null
$PY -c "import keras, jax; print('keras', keras.__version__, 'jax', jax.__version__, jax.devices())" || exit 1
mkdir -p .device/logs "$OUT/models"
# Best-so-far checkpoints go under $OUT, so a run killed by the tool's limit still returns them;
# they are dropped once the finished models are written (at most 8 files come back).
common=(--data-dir .pack/lgg --out "$OUT/models" --checkpoints "$OUT/ckpt" --no-cache --epochs 1000 --patience 60
        --max-minutes "$MINUTES" --size 256)
# Each process stops itself after MINUTES of fitting (compilation included) and then needs about
# a minute to score and save; the hard limit only guards a hang.
limit=$(awk -v m="$MINUTES" "BEGIN{print int(m*60+150)}")
timeout $limit $PY -m mri_core.train lgg --arch unet "${common[@]}" > .device/logs/unet.log 2>&1 &
timeout $limit $PY -m mri_core.train lgg --arch resunet --name lgg_resunet "${common[@]}" > .device/logs/resunet.log 2>&1 &
timeout $limit $PY -m mri_core.train lgg --arch unet_lite --name lgg_unet_lite \
  --init-from models/lgg_unet_lite/model.keras "${common[@]}" > .device/logs/unet_lite.log 2>&1 &
wait
for d in "$OUT"/ckpt/*; do n=$(basename "$d"); [ -f "$OUT/models/${n%%-*}/model.keras" ] && rm -rf "$d"; done
for f in .device/logs/*.log; do echo "=== $f"; cat "$f"; done > "$OUT/train.log"
for f in .device/logs/*.log; do echo "=== $f"; grep -E "loaded|improved|time budget|early stop|Error|Traceback" "$f" | tail -n 6; done
ls -la "$OUT"/models/*
