"""Training callbacks: checkpoints on a validation metric with early stopping and a time budget,
the warm-up + cosine learning-rate schedule, and stochastic weight averaging."""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras
import numpy as np


class ValidationMetric(keras.callbacks.Callback):
    """Checkpoint on a validation metric Keras cannot compute per batch, ``monitor_fn(model) ->
    (name, value[, {other figures to log}])``, added to the logs; stop after ``patience`` epochs
    without improvement or after ``max_minutes``. With ``score_start`` (a resumed run) the starting
    weights are scored and saved first, so a resumed run can only keep or improve the model."""

    def __init__(self, monitor_fn, ckpt: Path, patience: int, max_minutes: float, score_start: bool = False):
        super().__init__()
        self.monitor_fn, self.ckpt, self.patience = monitor_fn, ckpt, patience
        self.max_minutes, self.score_start = max_minutes, score_start
        self.best = -np.inf
        self.wait = 0
        self.start = time.time()

    def on_train_begin(self, logs=None):
        if self.score_start:
            name, self.best, *_ = self.monitor_fn(self.model)
            self.model.save(self.ckpt)
            print(f"starting weights: {name} {self.best:.4f}", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        name, value, *extra = self.monitor_fn(self.model)
        logs[name] = value
        logs.update(*extra)  # figures logged beside it (curves in the card), not checkpointed on
        if value > self.best:
            self.best, self.wait = value, 0
            self.model.save(self.ckpt)
            print(f"\nepoch {epoch + 1}: {name} improved to {value:.4f}, saved {self.ckpt}", flush=True)
        else:
            self.wait += 1
            print(f"\nepoch {epoch + 1}: {name} {value:.4f} (best {self.best:.4f})", flush=True)
        if self.wait >= self.patience:
            print(f"early stop: no improvement in {self.patience} epochs", flush=True)
            self.model.stop_training = True
        if self.max_minutes and time.time() - self.start > self.max_minutes * 60:
            print(f"time budget of {self.max_minutes} minutes reached", flush=True)
            self.model.stop_training = True


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
        if self.start is None:
            self.start = time.time()
        if step < self.warmup:
            return self.lr * (0.05 + 0.95 * step / self.warmup)
        return self.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * self.progress(step))))


class SetLearningRate(keras.callbacks.Callback):
    """Sets the optimizer's learning rate from ``schedule`` before every batch and logs it per epoch."""

    def __init__(self, schedule: CosineSchedule):
        super().__init__()
        self.schedule = schedule
        self.step = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate.assign(self.schedule(self.step))
        self.step += 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.schedule(self.step))


class WeightAverage(keras.callbacks.Callback):
    """Stochastic weight averaging (Izmailov et al. 2018): the mean of the weights at the end of
    every epoch that ends after ``start`` of the learning-rate decay (``CosineSchedule.progress``).

    From one epoch to the next the validation figure of a resumed run swings by several points:
    the weights wander around a wide optimum, and their mean sits nearer its centre than any one
    of them. ``apply`` sets the mean into the
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


def training_callbacks(args, monitor_fn, ckpt: Path, steps: int):
    """(callbacks, the weight average or None): checkpoint on ``monitor_fn`` first (its ``best``
    is read after training), then the learning-rate schedule, then ``--average-from``."""
    schedule = CosineSchedule(args.lr, steps, args.epochs, args.max_minutes)
    callbacks = [ValidationMetric(monitor_fn, ckpt, args.patience, args.max_minutes, bool(args.init_from)),
                 SetLearningRate(schedule)]
    average = WeightAverage(schedule, steps, args.average_from) if args.average_from else None
    return callbacks + ([average] if average else []), average


def keep_average(average: WeightAverage, model, x: np.ndarray, batch_size: int, monitor_fn, best: float, ckpt: Path) -> dict:
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
