"""The steps both recipes share: the optimizer, starting weights, the fit with its checkpoints and
weight average, and the float32 model kept at the end."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from mri_core.training.callbacks import keep_average, training_callbacks


def checkpoint_path(args) -> Path:
    """One folder per run: two runs of the same model name (a test beside a long run) never share it."""
    return Path(args.checkpoints) / f"{args.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}" / "best.keras"


def optimizer(lr, weight_decay):
    return keras.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay, clipnorm=1.0)


def load_weights_across_channels(model, path) -> None:
    """Load the weights of the ``.keras`` file ``path`` into ``model``, layer by layer by name. Where
    ``model`` takes fewer image channels (one sequence instead of three), the kernels that read the
    image (the last input channels of a layer, as concatenations put the image last) are summed
    over them: the model starts out seeing the one sequence copied into all three."""
    source = keras.saving.load_model(path, compile=False)
    if source.input_shape[-1] == model.input_shape[-1]:
        model.set_weights(source.get_weights())
        return
    extra = source.input_shape[-1] - model.input_shape[-1]
    for layer in model.layers:
        weights = source.get_layer(layer.name).get_weights()
        if weights and weights[0].shape != layer.get_weights()[0].shape:
            k = weights[0]
            image = k[..., -(extra + 1):, :].sum(axis=-2, keepdims=True)
            weights[0] = np.concatenate([k[..., : -(extra + 1), :], image], axis=-2)
        layer.set_weights(weights)


def as_float32(model, build):
    """The model as float32: checkpoints of a mixed-precision run would compute in bfloat16 in the
    app too (their layers keep the policy). Rebuilt under float32 with the same weights (kept in
    float32 during training anyway)."""
    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model
    keras.mixed_precision.set_global_policy("float32")
    clean = build()
    clean.set_weights(model.get_weights())
    return clean


@dataclass
class Fitted:
    """What a fit leaves: the best weights as a float32 model, the curves, the time, the average's record."""

    model: keras.Model
    history: dict
    seconds: float
    weight_average: dict | None


def fit(model, batches, validation_data, args, monitor_fn, x_train: np.ndarray, ckpt: Path, build) -> Fitted:
    """Train ``model`` on ``batches``, checkpointing on ``monitor_fn`` into ``ckpt``; with
    ``--average-from`` the weight average replaces the checkpoint if it scores better. The best
    weights are read back as float32 (``build`` makes the same network afresh)."""
    steps = int(np.ceil(len(x_train) / args.batch_size))
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    callbacks, average = training_callbacks(args, monitor_fn, ckpt, steps)
    t0 = time.time()
    hist = model.fit(batches, validation_data=validation_data, epochs=args.epochs, callbacks=callbacks, verbose=2)
    averaged = keep_average(average, model, x_train, args.batch_size, monitor_fn, callbacks[0].best, ckpt) if average else None
    train_s = time.time() - t0
    best = as_float32(keras.saving.load_model(ckpt, compile=False), build)
    return Fitted(best, hist.history, train_s, averaged)
