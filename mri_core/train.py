"""Train a model and write it with its card: ``python -m mri_core.train TASK --arch NAME [options]``.

Classifiers: the shared crop, MRI-safe augmentation (mirror, small rotation/shift/zoom,
contrast), class weights, label smoothing, AdamW with warm-up and cosine decay, checkpoints on
the validation macro-F1, early stopping, temperature scaling fitted on validation.
Segmenters: Dice + binary cross-entropy, patients split apart, checkpoints on per-patient Dice.
Augmentation runs on the host with OpenCV (``AugmentedBatches``), so the same pipeline serves the
TensorFlow backend here and the JAX backend on a lent GPU.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import keras
import numpy as np

from mri_core import data as D
from mri_core.io.folders import LGG_CHANNELS, list_lgg
from mri_core.architectures import get_architecture, create_model
from mri_core.models import MODELS_DIR, MODEL_FILE, LoadedModel, write_card, file_mb
from mri_core.preprocess import channel_p99, normalize_intensity
from mri_core.tasks import get_task

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m mri_core.train", description=__doc__.split("\n")[0])
    p.add_argument("task", choices=["brain_tumor", "alzheimer", "lgg"])
    p.add_argument("--arch", required=True, help="architecture name from mri_core.architectures")
    p.add_argument("--name", help="model name (folder under models/); default TASK_ARCH")
    p.add_argument("--data-dir", type=Path, help="default: ../shared/data/<task>[/train]")
    p.add_argument("--out", type=Path, default=MODELS_DIR, help="models folder")
    p.add_argument("--size", type=int, help="input side in pixels (default: the architecture's)")
    p.add_argument("--channels", type=int, choices=[1, 3])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--label-smoothing", type=float, default=0.05)
    p.add_argument("--class-weight-power", type=float, default=1.0, help="1 = fully balanced, 0 = none")
    p.add_argument("--val-fraction", type=float, default=0.12)
    p.add_argument("--val-patients", type=int, default=14, help="LGG: patients held out for validation")
    p.add_argument("--patience", type=int, default=8)
    p.add_argument("--max-minutes", type=float, default=0, help="stop after this much training time (0: no limit)")
    p.add_argument("--limit", type=int, default=0, help="use only this many training images (smoke runs)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--init-from", type=Path, help="start from the weights of this .keras file (resume a run)")
    p.add_argument("--extra-sources", action="store_true",
                   help="brain_tumor: add LGG patients' FLAIR slices (tumour -> glioma, none -> notumor) and OASIS slices "
                        "(notumor) from those sets' own training splits, so no class comes from one source alone")
    p.add_argument("--appearance", type=float, default=0.0,
                   help="classifiers: probability of each appearance change (gamma, blur, resampling, noise, JPEG)")
    p.add_argument("--input-channel", choices=list(LGG_CHANNELS),
                   help="lgg: train on this one sequence of the three (e.g. flair), given as a grey slice")
    p.add_argument("--imagenet-weights", type=Path, help="ImageNet weights file for a Keras Applications backbone")
    p.add_argument("--default", action="store_true", help="mark as the task's default model")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32",
                   help="mixed_bfloat16 computes in bfloat16 (faster for the U-Nets on CPUs with AMX / AVX512-BF16, "
                        "slower for MobileNetV3; see the README); "
                        "the model saved is float32 either way")
    p.add_argument("--intensity-max-gain", type=float, default=4.0,
                   help="segmenters: brighten dark slices to the training slices' level by up to this gain "
                        "(preprocess.normalize_intensity; 1 = off)")
    p.add_argument("--average-from", type=float, default=0.0,
                   help="stochastic weight averaging: average the weights of every epoch that ends after this "
                        "fraction of the learning-rate decay (e.g. 0.5), re-estimate batch norm, keep the mean "
                        "if it scores better than the best epoch (0: off)")
    p.add_argument("--checkpoints", type=Path, default=CHECKPOINTS,
                   help="folder for the best-so-far checkpoints (on a lent GPU: under $OUT, so a killed run still returns them)")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- callbacks


def checkpoint_path(args) -> Path:
    """One folder per run: two runs of the same model name (a test beside a long run) never share it."""
    return Path(args.checkpoints) / f"{args.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}" / "best.keras"


def _callbacks(monitor_fn, ckpt: Path, patience: int, max_minutes: float, score_start: bool = False):
    """Checkpoint on a validation metric, ``monitor_fn(model) -> (name, value[, {other figures to
    log}])``; with ``score_start`` (a resumed run) the starting weights
    are scored and saved first, so a resumed run can only keep or improve the model."""

    class ValidationMetric(keras.callbacks.Callback):
        """Adds a validation metric to the logs that Keras cannot compute per batch."""

        def __init__(self):
            super().__init__()
            self.best = -np.inf
            self.wait = 0
            self.start = time.time()

        def on_train_begin(self, logs=None):
            if score_start:
                name, self.best, *_ = monitor_fn(self.model)
                self.model.save(ckpt)
                print(f"starting weights: {name} {self.best:.4f}", flush=True)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            name, value, *extra = monitor_fn(self.model)
            logs[name] = value
            logs.update(*extra)  # figures logged beside it (curves in the card), not checkpointed on
            if value > self.best:
                self.best, self.wait = value, 0
                self.model.save(ckpt)
                print(f"\nepoch {epoch + 1}: {name} improved to {value:.4f}, saved {ckpt}", flush=True)
            else:
                self.wait += 1
                print(f"\nepoch {epoch + 1}: {name} {value:.4f} (best {self.best:.4f})", flush=True)
            if self.wait >= patience:
                print(f"early stop: no improvement in {patience} epochs", flush=True)
                self.model.stop_training = True
            if max_minutes and time.time() - self.start > max_minutes * 60:
                print(f"time budget of {max_minutes} minutes reached", flush=True)
                self.model.stop_training = True

    return [ValidationMetric()]


class AugmentedBatches(keras.utils.PyDataset):
    """Shuffled training batches, each image through its own random affine warp (OpenCV, on the host).

    MRI-safe transforms only: left-right mirror (brains are near-symmetric; never up-down), a small
    rotation, shift and zoom with black fill, and an intensity change (contrast about the image
    mean, or a brightness factor). ``masks`` get the same warp as their image, bilinear then
    thresholded at 0.5, as Keras's layers did. Keras's RandomRotation/Translation/Zoom layers were
    used before: under JAX they cost 3x the U-Net's own training step even on the CPU (181 -> 609
    ms a step at 32 px) and left an H200 at 4 epochs in 7 minutes, because each runs an
    interpolating gather per layer; a warp here is ~0.1 ms an image and overlaps the step.

    Batch ``i`` of epoch ``e`` is drawn from ``default_rng([seed, e, i])``, so worker threads can
    make batches in any order and a run repeats.
    """

    def __init__(self, x, targets, batch_size: int, seed: int, *, masks: bool = False,
                 rotate_deg: float = 14.4, shift: float = 0.06, zoom: float = 0.1,
                 contrast: float = 0.0, brightness: float = 0.0, appearance: float = 0.0, sample_weight=None,
                 workers: int = 4):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        self.x, self.targets, self.batch_size, self.seed = x, targets, batch_size, seed
        self.masks, self.rotate_deg, self.shift, self.zoom = masks, rotate_deg, shift, zoom
        self.contrast, self.brightness, self.sample_weight = contrast, brightness, sample_weight
        self.appearance = appearance
        self.epoch = 0
        self.order = np.random.default_rng([seed, 0]).permutation(len(x))

    def __len__(self) -> int:
        return int(np.ceil(len(self.x) / self.batch_size))

    def on_epoch_end(self):
        self.epoch += 1
        self.order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.x))

    def _warp(self, rng, image, mask):
        h, w = image.shape[:2]
        if rng.random() < 0.5:
            image = image[:, ::-1]
            mask = None if mask is None else mask[:, ::-1]
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-self.rotate_deg, self.rotate_deg),
                                         rng.uniform(1 - self.zoom, 1 + self.zoom))
        matrix[:, 2] += rng.uniform(-self.shift, self.shift, 2) * (w, h)
        kw = dict(flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        out = cv2.warpAffine(np.ascontiguousarray(image), matrix, (w, h), **kw).reshape(image.shape)
        if self.contrast:
            mean = out.mean(axis=(0, 1), keepdims=True)
            out = (out - mean) * rng.uniform(1 - self.contrast, 1 + self.contrast) + mean
        if self.brightness:
            out = out * rng.uniform(1 - self.brightness, 1 + self.brightness)
        out = np.clip(out, 0.0, 1.0)
        if self.appearance:
            out = change_appearance(rng, out, self.appearance)
        if mask is None:
            return out, None
        warped = cv2.warpAffine(np.ascontiguousarray(mask[..., 0], dtype=np.float32), matrix, (w, h), **kw)
        return out, (warped > 0.5).astype(np.float32)[..., None]

    def __getitem__(self, i):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        idx = np.sort(self.order[i * self.batch_size:(i + 1) * self.batch_size])
        images, targets = [], []
        for j in idx:
            image, mask = self._warp(rng, self.x[j], self.targets[j] if self.masks else None)
            images.append(image)
            targets.append(mask if self.masks else self.targets[j])
        batch = (np.stack(images).astype(np.float32), np.stack(targets).astype(np.float32))
        return batch if self.sample_weight is None else batch + (self.sample_weight[idx].astype(np.float32),)


def change_appearance(rng, image: np.ndarray, p: float) -> np.ndarray:
    """Change how a slice (H, W, C) in [0, 1] looks, not what it shows, as another scanner, sequence
    or export would: gamma, blur, down- and up-sampling, noise and JPEG re-compression, each with
    probability ``p``. Channels stay equal where they were (a grey slice stays grey)."""
    h, w = image.shape[:2]
    out = image.astype(np.float32)
    if rng.random() < p:
        out = out ** np.float32(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    if rng.random() < p:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.5)).reshape(image.shape)
    if rng.random() < p:
        f = rng.uniform(0.3, 0.8)
        small = cv2.resize(out, (max(int(w * f), 8), max(int(h * f), 8)), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).reshape(image.shape)
    if rng.random() < p:
        noise = rng.normal(0.0, rng.uniform(0.01, 0.05), (h, w, 1)).astype(np.float32)
        out = out + noise
    out = np.clip(out, 0.0, 1.0)
    if rng.random() < p:
        u8 = (out[..., 0] * 255 + 0.5).astype(np.uint8) if out.shape[-1] in (1, 3) else None
        ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
        if ok and np.allclose(out, out[..., :1]):  # grey: one channel carries it
            out = np.repeat(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)[..., None], out.shape[-1], axis=-1) / np.float32(255)
    return out.astype(np.float32)


class CosineSchedule:
    """Warm-up then cosine decay over whichever runs out first: the epochs or the time budget.

    A per-step schedule fixed in advance would be cut off mid-decay by ``--max-minutes``, leaving
    the last weights trained at a high rate; following the clock lets every run end annealed.
    """

    def __init__(self, lr: float, steps_per_epoch: int, epochs: int, max_minutes: float):
        self.lr, self.total = lr, max(steps_per_epoch * epochs, 1)
        self.warmup = max(min(steps_per_epoch * 2, self.total // 4), 1)
        self.budget_s = max_minutes * 60 if max_minutes else 0.0
        self.start = None

    def progress(self, step: int) -> float:
        """How far the decay has gone, 0 to 1: by steps or by the clock, whichever is further."""
        if self.start is None:
            self.start = time.time()
        if step < self.warmup:
            return 0.0
        progress = (step - self.warmup) / max(self.total - self.warmup, 1)
        if self.budget_s:
            progress = max(progress, (time.time() - self.start) / self.budget_s)
        return min(progress, 1.0)

    def __call__(self, step: int) -> float:
        import math

        if self.start is None:
            self.start = time.time()
        if step < self.warmup:
            return self.lr * (0.05 + 0.95 * step / self.warmup)
        return self.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * self.progress(step))))


def _schedule_callback(schedule: CosineSchedule):
    class SetLearningRate(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.step = 0

        def on_train_batch_begin(self, batch, logs=None):
            self.model.optimizer.learning_rate.assign(schedule(self.step))
            self.step += 1

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["learning_rate"] = float(schedule(self.step))

    return SetLearningRate()


class WeightAverage(keras.callbacks.Callback):
    """Stochastic weight averaging (Izmailov et al. 2018): the mean of the weights at the end of
    every epoch that ends after ``start`` of the learning-rate decay (``CosineSchedule.progress``).

    From one epoch to the next the validation figure of a resumed run swings by several points
    (LGG Dice/patient 0.76-0.83 in one run at lr 3e-4): the weights wander around a wide optimum,
    and their mean sits nearer its centre than any one of them. ``apply`` sets the mean into the
    model and re-estimates the batch-norm statistics for it, which averaging does not give.
    """

    def __init__(self, schedule: CosineSchedule, steps_per_epoch: int, start: float):
        super().__init__()
        self.schedule, self.steps_per_epoch, self.start = schedule, steps_per_epoch, start
        self.sum, self.count = None, 0

    def on_epoch_end(self, epoch, logs=None):
        if self.schedule.progress((epoch + 1) * self.steps_per_epoch) < self.start:
            return
        weights = [np.asarray(w, np.float64) for w in self.model.get_weights()]
        self.sum = weights if self.sum is None else [a + w for a, w in zip(self.sum, weights)]
        self.count += 1

    def apply(self, model, x: np.ndarray, batch_size: int) -> None:
        """Put the mean weights into ``model`` and recompute its batch-norm moving statistics as
        the cumulative mean over ``x`` (training images, not augmented) in training mode."""
        model.set_weights([(a / self.count).astype(np.float32) for a in self.sum])
        bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        momenta = [bn.momentum for bn in bns]
        order = np.random.default_rng(0).permutation(len(x))
        for i, start in enumerate(range(0, len(x), batch_size)):
            for bn in bns:
                bn.momentum = i / (i + 1)  # the first batch replaces the statistics, later ones average in
            model(x[np.sort(order[start : start + batch_size])], training=True)
        for bn, m in zip(bns, momenta):
            bn.momentum = m


def _training_callbacks(args, monitor_fn, ckpt: Path, steps: int):
    """(callbacks, the weight average or None): checkpoint on ``monitor_fn`` first (its ``best``
    is read after training), then the learning-rate schedule, then ``--average-from``."""
    schedule = CosineSchedule(args.lr, steps, args.epochs, args.max_minutes)
    callbacks = _callbacks(monitor_fn, ckpt, args.patience, args.max_minutes, bool(args.init_from))
    callbacks.append(_schedule_callback(schedule))
    average = WeightAverage(schedule, steps, args.average_from) if args.average_from else None
    return callbacks + ([average] if average else []), average


def _keep_average(average: WeightAverage, model, x: np.ndarray, batch_size: int, monitor_fn, best: float, ckpt: Path) -> dict:
    """Score the averaged weights with the checkpoint's metric; they replace the checkpoint only if
    better. Returns the card's record of it."""
    if average.count < 2:
        return {"epochs_averaged": average.count, "kept": False, "note": "fewer than two epochs to average"}
    average.apply(model, x, batch_size)
    name, value, *_ = monitor_fn(model)
    kept = bool(value > best)
    if kept:
        model.save(ckpt)
    print(f"weight average of {average.count} epochs: {name} {value:.4f} (best epoch {best:.4f}); "
          f"{'kept' if kept else 'not kept'}", flush=True)
    return {"epochs_averaged": average.count, "from_decay": average.start, name: round(float(value), 4),
            "best_single_epoch": round(float(best), 4), "kept": kept}


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


def _float32(model, build):
    """The model as float32: checkpoints of a mixed-precision run would compute in bfloat16 in the
    app too (their layers keep the policy). Rebuilt under float32 with the same weights (kept in
    float32 during training anyway)."""
    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model
    keras.mixed_precision.set_global_policy("float32")
    clean = build()
    clean.set_weights(model.get_weights())
    return clean


def _optimizer(lr, weight_decay):
    return keras.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay, clipnorm=1.0)


# --------------------------------------------------------------------------- classifiers


def class_weights(y: np.ndarray, n: int, power: float) -> dict[int, float]:
    counts = np.bincount(y, minlength=n).astype(float)
    w = (counts.sum() / (n * np.maximum(counts, 1))) ** power
    return {i: float(v) for i, v in enumerate(w)}


def fit_temperature(view_probs: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising the validation NLL of the TTA-averaged probabilities."""
    from mri_core.inference import calibrate

    def nll(t):
        p = calibrate(view_probs, t).mean(axis=1)
        return -np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean()

    grid = np.exp(np.linspace(np.log(0.2), np.log(5.0), 121))
    return float(grid[int(np.argmin([nll(t) for t in grid]))])


def classifier_data(task, pre, args):
    """(x_train, y_train, x_val, y_val, n_own_val, split record) prepared as ``pre`` says, split as
    the task's models are split. With ``args.extra_sources`` the other sources' slices follow the
    task's own (its first ``n_own_val`` validation images are the task set's own)."""
    data_dir = args.data_dir or task.data_dir
    t0 = time.time()
    x, y, _ = D.load_classification(data_dir, task.class_names, pre, cache=not args.no_cache)
    print(f"loaded {len(x)} images {x.shape[1:]} in {time.time() - t0:.0f} s", flush=True)
    if task.name == "alzheimer":
        groups = D.similarity_groups(x)
        tr, va = D.group_split(groups, y, args.val_fraction, args.seed)
        split = {"kind": "by pseudo-subject (groups of near-identical slices, r > 0.95; subjects are not labelled)",
                 "n_groups": int(groups.max() + 1), "n_val_groups": int(len(np.unique(groups[va])))}
    else:
        tr, va = D.stratified_split(y, args.val_fraction, args.seed)
        split = {"kind": "stratified random (no patient identifiers in this set)"}
    if args.limit:
        rng = np.random.default_rng(args.seed)
        tr = np.sort(rng.choice(tr, min(args.limit, len(tr)), replace=False))
        va = np.sort(rng.choice(va, min(max(args.limit // 4, 8), len(va)), replace=False))
    split.update(seed=args.seed, val_fraction=args.val_fraction, n_train=int(len(tr)), n_val=int(len(va)))
    xtr, ytr, xva, yva = x[tr], y[tr], x[va], y[va]
    n_own_val = len(xva)
    if getattr(args, "extra_sources", False):
        extra = other_tumour_sources(task, pre, args.seed, cache=not args.no_cache, limit=args.limit)
        xtr, ytr = np.concatenate([xtr, extra["x_train"]]), np.concatenate([ytr, extra["y_train"]])
        xva, yva = np.concatenate([xva, extra["x_val"]]), np.concatenate([yva, extra["y_val"]])
        split["extra_sources"] = extra["record"]
    return xtr, ytr, xva, yva, n_own_val, split


def train_classifier(args, task, arch) -> dict:
    from mri_core.inference import classify_prepared
    from mri_core.metrics import classification_report, macro_f1

    size = args.size or arch.input_size[0]
    pre = {"crop": True, "size": [size, size], "channels": args.channels or arch.channels, "scale": "[0, 1]"}
    xtr, ytr, xva, yva, n_own_val, split = classifier_data(task, pre, args)
    n = len(task.class_names)

    kw = {"weights": str(args.imagenet_weights)} if args.imagenet_weights else {}
    model = create_model(arch.name, num_classes=n, input_size=(size, size), channels=pre["channels"], **kw)
    if args.init_from:
        model.load_weights(args.init_from)
    steps = int(np.ceil(len(xtr) / args.batch_size))
    model.compile(
        optimizer=_optimizer(args.lr, args.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing),
        metrics=["accuracy"],
    )
    weights = class_weights(ytr, n, args.class_weight_power)
    batches = AugmentedBatches(xtr, keras.utils.to_categorical(ytr, n), args.batch_size, args.seed,
                               rotate_deg=14.4, shift=0.06, zoom=0.1, contrast=0.2, appearance=args.appearance,
                               sample_weight=np.asarray([weights[int(c)] for c in ytr]))
    val_ds = (xva, keras.utils.to_categorical(yva, n))

    def monitor(m):
        # Chosen on the app's prediction, the mean over the four TTA views, as the card reports it:
        # single-view F1 ranked epochs differently (a run's best single-view epoch, 0.984, gave
        # 0.976 with TTA, below the 0.979 it started from). The plain view is logged beside it.
        views = classify_prepared(LoadedModel(args.name, {"class_names": list(task.class_names)}, m, ckpt), xva)
        plain = macro_f1(yva, views[:, 0].argmax(1), n)
        return "val_macro_f1_tta", macro_f1(yva, views.mean(axis=1).argmax(1), n), {"val_macro_f1": plain}

    ckpt = checkpoint_path(args)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    callbacks, average = _training_callbacks(args, monitor, ckpt, steps)
    t0 = time.time()
    hist = model.fit(batches, validation_data=val_ds, epochs=args.epochs, callbacks=callbacks, verbose=2)
    averaged = _keep_average(average, model, xtr, args.batch_size, monitor, callbacks[0].best, ckpt) if average else None
    train_s = time.time() - t0
    best = _float32(keras.saving.load_model(ckpt, compile=False),
                    lambda: create_model(arch.name, num_classes=n, input_size=(size, size), channels=pre["channels"]))
    card = {"task": task.name, "kind": "classifier", "class_names": list(task.class_names), "preprocessing": pre}
    if averaged:
        card["weight_average"] = averaged
    loaded = LoadedModel(args.name, card, best, ckpt)
    view_probs = classify_prepared(loaded, xva, tta=True)  # temperature 1 so far
    t = fit_temperature(view_probs, yva)
    card["calibration"] = {"method": "temperature scaling on the validation split, TTA-averaged", "temperature": t}
    loaded = LoadedModel(args.name, card, best, ckpt)
    probs = classify_prepared(loaded, xva, tta=True).mean(axis=1)
    report = classification_report(yva[:n_own_val], probs[:n_own_val], list(task.class_names))
    metrics = {"validation": report}
    if args.extra_sources:
        metrics["validation_with_other_sources"] = classification_report(yva, probs, list(task.class_names))
    gray = xtr.mean(axis=-1)
    card.update(
        input_stats={"mean": float(gray.mean(axis=(1, 2)).mean()), "std": float(gray.mean(axis=(1, 2)).std())},
        uncertainty={"method": "test-time augmentation: identity, mirror, 90 % zoom, mirrored zoom; std of the top-class probability"},
    )
    card["reliability"], detector = fit_reliability(best, card, xtr, ytr, xva, metrics["validation"]["confusion"])
    return _finish(args, arch, best, card, split, hist.history, train_s, metrics, detector)


def fit_reliability(model, card: dict, xtr, ytr, xva, confusion) -> tuple[dict, "OodDetector"]:
    """(the card's ``reliability`` record, the fitted detector): the out-of-distribution detector
    on the penultimate features of the training images as they are, its threshold on the
    validation images', and which calls were better than chance on validation (``confusion``)."""
    from mri_core import reliability as R

    layers = R.feature_layers(model)
    fm = R.features_model(model, layers)
    ftr, fva = R.probs_and_features(fm, xtr)[1], R.probs_and_features(fm, xva)[1]
    detector = R.fit_detector(ftr, ytr, len(card["class_names"]), fva)
    record = {
        "ood": {"method": "Mahalanobis distance of the features of an early layer and of the penultimate pool to the "
                          "nearest class mean (shared covariance, Ledoit-Wolf), fitted on the training images; each "
                          f"scaled by its {R.VAL_QUANTILE:.0%} validation quantile, the larger compared with the "
                          f"{R.VAL_QUANTILE:.0%} validation quantile of that",
                "layers": layers, "threshold": detector.threshold, "file": R.OOD_FILE,
                "validation_abstained": float((detector.distance(fva) > detector.threshold).mean())},
        "calls": R.call_reliability(confusion, card["class_names"]),
    }
    return record, detector


def refit_reliability(name: str, root: Path | None = None) -> dict:
    """Fit ``fit_reliability`` again for a trained classifier, on its own split (as its card
    records it), and write ``ood.npz`` and the card; for models trained before it existed."""
    from mri_core.models import model_dir, read_card

    card = read_card(name, root)
    split = card["split"]
    args = argparse.Namespace(data_dir=None, no_cache=False, limit=0, seed=split["seed"],
                              val_fraction=split["val_fraction"], extra_sources="extra_sources" in split)
    xtr, ytr, xva, _, _, _ = classifier_data(get_task(card["task"]), card["preprocessing"], args)
    model = keras.saving.load_model(model_dir(name, root) / MODEL_FILE, compile=False)
    card["reliability"], detector = fit_reliability(model, card, xtr, ytr, xva, card["metrics"]["validation"]["confusion"])
    detector.save(model_dir(name, root) / card["reliability"]["ood"]["file"])
    write_card(name, card, root)
    return card["reliability"]


OTHER_SOURCE_CAP = 1000  # tumour-free slices taken from each other source: enough to break the shortcut, not to swamp


def other_tumour_sources(task, pre, seed: int, cache: bool = True, limit: int = 0) -> dict:
    """Slices from sources other than the tumour set, labelled for the tumour task, each split as its
    own task splits it (LGG by patient, OASIS by pseudo-subject), so no validation patient or
    subject is trained on: LGG FLAIR slices with a tumour -> glioma (lower-grade gliomas are
    gliomas), LGG and OASIS slices without -> notumor (LGG slices with a sliver of tumour are left out)."""
    from mri_core.tasks import get_task

    glioma, notumor = task.class_names.index("glioma"), task.class_names.index("notumor")
    rng = np.random.default_rng(seed)
    lgg_dir, alz = get_task("lgg").data_dir, get_task("alzheimer")
    xl, yl, pl, _ = D.load_lgg_channel(lgg_dir, pre, "flair", cache=cache)
    val_patients = D.lgg_validation_patients(lgg_dir)
    in_val = np.isin(pl, val_patients)
    xo, _, opaths = D.load_classification(alz.data_dir, alz.class_names, pre, cache=cache)
    otr, ova = D.oasis_split(alz.data_dir, alz.class_names, cache=cache)

    def pick(idx, cap):
        cap = min(cap, limit) if limit else cap
        return np.sort(rng.choice(idx, min(cap, len(idx)), replace=False))

    lgg_tumour, lgg_free = np.flatnonzero((yl == 1) & ~in_val), np.flatnonzero((yl == 0) & ~in_val)
    lgg_tumour, lgg_free, oasis = pick(lgg_tumour, len(lgg_tumour)), pick(lgg_free, OTHER_SOURCE_CAP), pick(otr, OTHER_SOURCE_CAP)
    val_lgg = np.flatnonzero((yl >= 0) & in_val)
    val_oasis = ova[::2]  # every other held-out OASIS slice: the per-epoch monitor stays affordable
    if limit:
        val_lgg, val_oasis = val_lgg[: max(limit // 8, 4)], val_oasis[: max(limit // 8, 4)]
    x_train = np.concatenate([xl[lgg_tumour], xl[lgg_free], xo[oasis]])
    y_train = np.concatenate([np.full(len(lgg_tumour), glioma), np.full(len(lgg_free) + len(oasis), notumor)])
    x_val = np.concatenate([xl[val_lgg], xo[val_oasis]])
    y_val = np.concatenate([np.where(yl[val_lgg] == 1, glioma, notumor), np.full(len(val_oasis), notumor)])
    record = {
        "lgg_flair": {"train_slices": {"glioma": int(len(lgg_tumour)), "notumor": int(len(lgg_free))},
                      "val_slices": int(len(val_lgg)), "val_patients": val_patients,
                      "tumour_slice": f"at least {D.MIN_TUMOR_PX} reference pixels; 1-{D.MIN_TUMOR_PX - 1} left out"},
        "oasis": {"train_slices": int(len(oasis)), "val_slices": int(len(val_oasis)),
                  "split": "the dementia models' split by pseudo-subject (seed 42): training groups only"},
    }
    print(f"other sources: {len(x_train)} training slices, {len(x_val)} validation slices", flush=True)
    return {"x_train": x_train, "y_train": y_train.astype(y_train.dtype), "x_val": x_val, "y_val": y_val, "record": record}


# --------------------------------------------------------------------------- segmenters


def dice_bce_loss(y_true, y_pred):
    from keras import ops

    # float32 whatever the compute precision: bfloat16 sums over 36,000 pixels lose the Dice.
    y_true, y_pred = ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")
    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred))
    inter = ops.sum(y_true * y_pred, axis=(1, 2, 3))
    denom = ops.sum(y_true, axis=(1, 2, 3)) + ops.sum(y_pred, axis=(1, 2, 3))
    dice = (2.0 * inter + 1.0) / (denom + 1.0)
    return bce + 1.0 - ops.mean(dice)


def per_patient_dice(pred: np.ndarray, truth: np.ndarray, patients: np.ndarray) -> float:
    """3-D Dice per patient (all slices together), averaged over patients."""
    from mri_core.metrics import dice

    return float(np.mean([dice(pred[patients == p], truth[patients == p]) for p in np.unique(patients)]))


MAPS = "mean of the slice's and its left-right mirror's probability maps (inference.segmentation_maps)"


def presence_rule(probs: np.ndarray, mva: np.ndarray) -> dict:
    """The tumour-presence rule chosen on validation from the network's maps ``probs`` (slices,
    H, W): how many of the most probable pixels are averaged into the slice's probability
    (``inference.tumor_probability``)."""
    from mri_core.inference import PRESENCE_CUT, tumor_probability

    truth_present = mva.reshape(len(mva), -1).any(axis=1)
    best_k, best_acc = 16, -1.0
    for k in (4, 8, 16, 32, 64, 128):
        scores = np.asarray([tumor_probability(p, k) for p in probs])
        acc = float(((scores >= PRESENCE_CUT) == truth_present).mean())
        if acc > best_acc:
            best_k, best_acc = k, acc
    return {
        "threshold": 0.5,
        "top_k": best_k,
        "tumor_probability": f"mean of the {best_k} most probable pixels at model resolution (chosen on validation)",
        "maps": MAPS,
    }


def scored_patient_dice(probs: np.ndarray, truth: np.ndarray, patients: np.ndarray, rule: dict) -> float:
    """``per_patient_dice`` of the masks the app would draw (``inference.postprocess`` on each
    patient's slices as one volume, presence rule ``rule``), at model resolution: the figure
    ``evaluate`` reports, without reading the files again. Slices of a patient are in slice order."""
    from mri_core.inference import lesion_mask, postprocess

    pred = np.zeros(probs.shape, bool)
    for p in np.unique(patients):
        idx = np.flatnonzero(patients == p)
        maps, scores = postprocess(probs[idx], rule["threshold"], rule["top_k"], volume=True)
        pred[idx] = lesion_mask(maps, scores, rule["threshold"])
    return per_patient_dice(pred, truth.reshape(probs.shape), patients)


def fit_intensity(x: np.ndarray, train_idx: np.ndarray, max_gain: float) -> dict:
    """The card's ``preprocessing.intensity``, fitted on the training slices ``x[train_idx]``
    (reference: the median over them of each channel's foreground 99th percentile,
    ``preprocess.channel_p99``); ``x``, already prepared at model size, is normalised with it in
    place: the same result as ``prepare()`` with the block, which applies it at model size."""
    p99 = np.stack([channel_p99(im) for im in x[train_idx]])
    spec = {
        "reference_p99": [round(float(v), 4) for v in np.nanmedian(p99, axis=0)],
        "max_gain": float(max_gain),
        "method": "each channel scaled so its foreground 99th percentile reaches the reference; gain between 1 and max_gain",
    }
    for i in range(len(x)):
        x[i] = normalize_intensity(x[i], spec["reference_p99"], max_gain)
    return spec


def train_segmenter(args, task, arch) -> dict:
    from mri_core.inference import segmentation_maps

    size = args.size or arch.input_size[0]
    pre = {"crop": False, "size": [size, size], "channels": 3, "scale": "[0, 1]"}
    if args.input_channel:  # one sequence, grey; a three-sequence slice given to it gives up that channel
        pre.update(channels=1, source_channel=LGG_CHANNELS.index(args.input_channel), sequence=args.input_channel)
    data_dir = args.data_dir or task.data_dir
    t0 = time.time()
    x, m, patients, has_tumor = D.load_lgg(data_dir, pre, cache=not args.no_cache)
    print(f"loaded {len(x)} slices {x.shape[1:]} in {time.time() - t0:.0f} s", flush=True)
    tr, va, val_ids = D.patient_split(patients, has_tumor, args.val_patients, args.seed)
    if args.limit:
        tr, va = tr[: args.limit], va[: max(args.limit // 4, 8)]
    if args.intensity_max_gain > 1:
        pre["intensity"] = fit_intensity(x, tr, args.intensity_max_gain)
    split = {
        "kind": "by patient",
        "seed": args.seed,
        "n_train": int(len(tr)),
        "n_val": int(len(va)),
        "n_train_patients": int(len(np.unique(patients[tr]))),
        "val_patients": sorted(set(patients[va].tolist())),
    }
    model = create_model(arch.name, num_classes=1, input_size=(size, size), channels=pre["channels"])
    if args.init_from:
        load_weights_across_channels(model, args.init_from)
    steps = int(np.ceil(len(tr) / args.batch_size))
    model.compile(optimizer=_optimizer(args.lr, args.weight_decay), loss=dice_bce_loss)
    batches = AugmentedBatches(x[tr], m[tr], args.batch_size, args.seed, masks=True,
                               rotate_deg=18.0, shift=0.06, zoom=0.1, brightness=0.15)
    xva, mva, pva = x[va], m[va].astype(bool), patients[va]

    def monitor(mdl):
        # Checkpoints are chosen on the masks the app draws (presence rule, main lesion): the raw
        # thresholded maps, which the first runs were chosen on, count false alarms that
        # post-processing removes and ranked epochs differently.
        probs = segmentation_maps(lambda v: mdl.predict(v, batch_size=64, verbose=0), xva)
        raw = per_patient_dice(probs >= 0.5, mva[..., 0], pva)
        value = scored_patient_dice(probs, mva, pva, presence_rule(probs, mva))
        return "val_patient_dice_scored", value, {"val_patient_dice": raw}

    ckpt = checkpoint_path(args)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    callbacks, average = _training_callbacks(args, monitor, ckpt, steps)
    t0 = time.time()
    hist = model.fit(batches, epochs=args.epochs, validation_data=(xva, mva.astype(np.float32)),
                     callbacks=callbacks, verbose=2)
    averaged = _keep_average(average, model, x[tr], args.batch_size, monitor, callbacks[0].best, ckpt) if average else None
    train_s = time.time() - t0
    best = _float32(keras.saving.load_model(ckpt, compile=False),
                    lambda: create_model(arch.name, num_classes=1, input_size=(size, size), channels=pre["channels"]))
    card = {"task": task.name, "kind": "segmenter", "class_names": list(task.class_names), "preprocessing": pre}
    if averaged:
        card["weight_average"] = averaged
    card["segmentation"] = presence_rule(segmentation_maps(lambda v: best.predict(v, batch_size=64, verbose=0), xva), mva)
    loaded = LoadedModel(args.name, card, best, ckpt)
    from mri_core.evaluate import score_lgg

    val_slices = [s for s in list_lgg(data_dir) if s.patient_id in set(split["val_patients"])]
    report = score_lgg(loaded, val_slices)
    return _finish(args, arch, best, card, split, hist.history, train_s, {"validation": report})


# --------------------------------------------------------------------------- common


def _machine() -> str:
    cpu = f"{platform.machine()} CPU, {os.cpu_count()} cores, {platform.system()}"
    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            return f"{device.device_kind} GPU (Keras on JAX), {cpu}"
    return cpu


def _finish(args, arch, model, card, split, history, train_s, metrics, detector=None) -> dict:
    out_dir = Path(args.out) / args.name
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / MODEL_FILE)
    if detector is not None:
        detector.save(out_dir / card["reliability"]["ood"]["file"])
    from mri_core.explain import default_gradcam_layer

    card = {
        "name": args.name,
        **card,
        "architecture": arch.name,
        "description": arch.description,
        "gradcam_layer": arch.gradcam_layer or default_gradcam_layer(model),
        "params": int(model.count_params()),
        "default": bool(args.default),
        "split": split,
        "metrics": metrics,
        "history": {k: [float(v) for v in vals] for k, vals in history.items()},
        "training": {
            "command": "python -m mri_core.train " + " ".join(args.argv),
            "epochs_run": len(next(iter(history.values()), [])),
            "seconds": round(train_s, 1),
            "machine": _machine(),
            "date": _dt.date.today().isoformat(),
            "imagenet_weights": str(args.imagenet_weights) if args.imagenet_weights else None,
        },
        "data": str(args.data_dir or get_task(card["task"]).data_dir).split("shared/")[-1],
    }
    _carry_over_previous_run(args, card)
    write_card(args.name, card, args.out)
    card["file_mb"] = round(file_mb(args.name, args.out), 2)
    write_card(args.name, card, args.out)
    print(json.dumps({"name": args.name, "metrics": metrics, "seconds": round(train_s)}, indent=1), flush=True)
    return card


def _carry_over_previous_run(args, card: dict) -> None:
    """A run resumed with --init-from models/<name>/model.keras keeps the earlier run's record:
    its history comes first in the curves, and its time and commands are added."""
    if not args.init_from:
        return
    previous = Path(args.init_from).parent / "card.json"
    card["training"]["resumed_from"] = str(args.init_from)
    if not previous.exists():
        return
    old = json.loads(previous.read_text())
    for key, values in card["history"].items():
        card["history"][key] = old.get("history", {}).get(key, [None] * old["training"]["epochs_run"]) + values
    t = card["training"]
    t["epochs_run"] += old["training"]["epochs_run"]
    t["seconds"] = round(t["seconds"] + old["training"]["seconds"], 1)
    t["earlier_commands"] = old["training"].get("earlier_commands", []) + [old["training"]["command"]]


def main(argv=None):
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for the card's command
    task = get_task(args.task)
    arch = get_architecture(args.arch)
    if arch.kind != task.kind:
        raise SystemExit(f"{args.arch} is a {arch.kind}; task {args.task} needs a {task.kind}")
    args.name = args.name or f"{args.task}_{args.arch}"

    keras.utils.set_random_seed(args.seed)
    keras.mixed_precision.set_global_policy(args.precision)
    try:
        if task.kind == "classifier":
            train_classifier(args, task, arch)
        else:
            train_segmenter(args, task, arch)
    finally:
        keras.mixed_precision.set_global_policy("float32")  # the policy is process-wide


if __name__ == "__main__":
    main()
