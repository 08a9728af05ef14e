"""When a classifier's call can be trusted, and a plain-language reason when it cannot.

Two checks, both measured on data the model was not trained on:

- **Out of distribution.** The Mahalanobis distance (Lee et al., NeurIPS 2018) of an image's
  features to the nearest class mean, under one covariance shared by the classes, at two depths:
  an early layer (texture and edges) and the penultimate pool (what the classifier sees); each
  distance is divided by its own validation quantile and the larger one counts. Means and covariance are fitted on the
  training images as they are (no augmentation) and stored beside the model (``ood.npz``); the
  threshold is a high quantile of the validation images' distances, so that only a few in-
  distribution calls are held back. A photo, a CT slice or a scan unlike the training data lands
  far from every class.
- **Better than chance.** A call of class *c* is shown only where, on the validation split, the
  calls of *c* were right more often than *c*'s share of the images: the lower end of the Wilson
  interval of its precision must pass its prevalence. The dementia model's stage calls on new
  subjects are barely better than chance for some stages; for those the app says so instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mri_core.cards import CallRecord

OOD_FILE = "ood.npz"
FEATURE_LAYER = "gap"  # the architectures' global average pool before dropout and the classifier
SEGMENTER_GRID = 3  # a segmenter's feature maps are read as 3 x 3 cells (feature_layers)
VAL_QUANTILE = 0.98  # the threshold lets 98 % of the in-distribution validation images through
WILSON_Z = 1.645  # one-sided 95 %


@dataclass(frozen=True)
class OodDetector:
    """Per feature layer: class means (K, D), the shared precision matrix (D, D) and a scale (the
    layer's own validation quantile); and the threshold on the largest scaled distance."""

    means: list[np.ndarray]
    precisions: list[np.ndarray]
    scales: list[float]
    threshold: float
    quantile: float = VAL_QUANTILE  # the share of validation images the threshold lets through

    @staticmethod
    def layer_distance(features: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of ``features`` (N, D) to the nearest of ``means``."""
        f = np.asarray(features, np.float64)
        d2 = [np.einsum("nd,de,ne->n", f - mu, precision, f - mu) for mu in means]
        return np.sqrt(np.maximum(np.min(d2, axis=0), 0.0))

    def distance(self, features: list[np.ndarray]) -> np.ndarray:
        """The largest over layers of each layer's distance divided by its scale: 1 is where 2 % of
        that layer's validation images lie beyond."""
        scaled = [self.layer_distance(f, m, p) / s for f, m, p, s in zip(features, self.means, self.precisions, self.scales)]
        return np.max(scaled, axis=0)

    def save(self, path: Path) -> None:
        arrays = {"threshold": np.float64(self.threshold), "scales": np.asarray(self.scales, np.float64),
                  "quantile": np.float64(self.quantile)}
        for i, (m, p) in enumerate(zip(self.means, self.precisions)):
            arrays[f"means_{i}"], arrays[f"precision_{i}"] = m.astype(np.float32), p.astype(np.float32)
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> "OodDetector":
        z = np.load(path)
        n = len(z["scales"])
        return cls([z[f"means_{i}"].astype(np.float64) for i in range(n)],
                   [z[f"precision_{i}"].astype(np.float64) for i in range(n)],
                   [float(v) for v in z["scales"]], float(z["threshold"]),
                   float(z["quantile"]) if "quantile" in z.files else VAL_QUANTILE)


def fit_gaussians(features: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(class means, shared precision) of training features; the covariance is shrunk (Ledoit-Wolf)
    because a few thousand images cannot pin down hundreds of dimensions."""
    from sklearn.covariance import LedoitWolf

    f = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    means = np.stack([f[labels == k].mean(axis=0) if np.any(labels == k) else f.mean(axis=0) for k in range(n_classes)])
    centred = f - means[labels]
    return means, LedoitWolf().fit(centred).precision_


def fit_detector(train_features: list[np.ndarray], train_labels, n_classes: int, val_features: list[np.ndarray],
                 quantile: float = VAL_QUANTILE) -> OodDetector:
    """The detector fitted on training features (one array per layer), each layer scaled by its
    validation images' ``quantile``, the threshold at ``quantile`` of their largest scaled distance."""
    means, precisions, scales = [], [], []
    for ftr, fva in zip(train_features, val_features):
        m, p = fit_gaussians(ftr, train_labels, n_classes)
        means.append(m)
        precisions.append(p)
        scales.append(float(np.quantile(OodDetector.layer_distance(fva, m, p), quantile)))
    unthresholded = OodDetector(means, precisions, scales, np.inf, quantile)
    return OodDetector(means, precisions, scales, float(np.quantile(unthresholded.distance(val_features), quantile)), quantile)


def feature_layers(keras_model, kind: str) -> list[str]:
    """The layers whose features the detector reads, by the model's ``kind`` (its card's). A
    classifier: the last layer at a quarter of the input's resolution (edges and texture: what tells
    a CT, a photo or noise from an MRI slice) and the penultimate pool ``FEATURE_LAYER`` (what it
    decides on). A segmenter: the encoder's first and last layers at a quarter of the resolution,
    read on a grid (``feature_grid``): its bottleneck, averaged over the slice, barely told T1 slices
    from the FLAIR it was trained on (docs/experiments.md)."""
    side = keras_model.input_shape[1]
    maps = [layer for layer in keras_model.layers if len(layer.output.shape) == 4]
    if kind == "classifier":
        return [layer.name for layer in maps if layer.output.shape[1] == side // 4][-1:] + [FEATURE_LAYER]
    deepest = min(layer.output.shape[1] for layer in maps)
    encoder = maps[: next(i for i, layer in enumerate(maps) if layer.output.shape[1] == deepest)]
    quarter = [layer.name for layer in encoder if layer.output.shape[1] == side // 4]
    return [quarter[0], quarter[-1]]


def feature_grid(kind: str) -> int | None:
    """The grid a model's detector reads its feature maps on, by its ``kind``: ``SEGMENTER_GRID`` for
    a segmenter (where in the head a texture is), None (the average over the whole slice) for a classifier."""
    return None if kind == "classifier" else SEGMENTER_GRID


def features_model(keras_model, layers: list[str], grid: int | None = None):
    """A model giving (the model's output, one feature vector per layer of ``layers``) in one pass;
    a feature map is averaged over the slice, or over each cell of a ``grid`` × ``grid`` layout
    (where in the head a texture is). It shares the layers of ``keras_model`` and leaves it unchanged."""
    import keras

    outputs = []
    for name in layers:
        out = keras_model.get_layer(name).output
        if len(out.shape) == 4 and grid:
            cell = (out.shape[1] // grid, out.shape[2] // grid)
            out = keras.layers.Flatten()(keras.layers.AveragePooling2D(pool_size=cell, strides=cell)(out))
        elif len(out.shape) == 4:
            out = keras.layers.GlobalAveragePooling2D()(out)
        outputs.append(out)
    return keras.Model(keras_model.inputs, [keras_model.outputs[0], *outputs])


def probs_and_features(model, x: np.ndarray, batch: int = 64) -> tuple[np.ndarray, list[np.ndarray]]:
    """(probabilities, [features per layer]) for inputs ``x`` through a ``features_model``."""
    outs = None
    for i in range(0, len(x), batch):
        r = [np.asarray(a) for a in model.predict_on_batch(x[i : i + batch])]
        outs = [[a] for a in r] if outs is None else [o + [a] for o, a in zip(outs, r)]
    if outs is None:
        return np.zeros((0,)), []
    return np.concatenate(outs[0]), [np.concatenate(o) for o in outs[1:]]


# --------------------------------------------------------------------------- better than chance


def wilson_lower(successes: int, n: int, z: float = WILSON_Z) -> float:
    """Lower end of the Wilson score interval of a proportion (0 when there is nothing to go on)."""
    if n <= 0:
        return 0.0
    p = successes / n
    centre = p + z * z / (2 * n)
    margin = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(max((centre - margin) / (1 + z * z / n), 0.0))


def call_reliability(confusion, class_names) -> dict[str, dict]:
    """Per class, from a validation confusion matrix (rows truth, columns call): how often its
    calls were right, the chance level (its prevalence) and whether it is better than chance."""
    c = np.asarray(confusion, float)
    total = c.sum()
    out = {}
    for k, name in enumerate(class_names):
        calls, right = int(c[:, k].sum()), int(c[k, k])
        prevalence = float(c[k].sum() / total) if total else 0.0
        out[name] = {
            "calls": calls,
            "precision": right / calls if calls else 0.0,
            "precision_lower": wilson_lower(right, calls),
            "chance": prevalence,
            "better_than_chance": bool(calls and wilson_lower(right, calls) > prevalence),
        }
    return out


UNTOLD_MODALITIES = ("unknown", "MR", "OT", "")  # MR, or a file that does not say (OT: secondary capture)


def modality_reason(modality: str) -> str | None:
    """Why a file's own modality rules it out (a DICOM that says CT, ultrasound, ...), or None."""
    if modality in UNTOLD_MODALITIES:
        return None
    return f"This DICOM says its modality is {modality}, not MR: the models were trained on MRI only."


def ood_reason(ood_distance: float | None, detector: OodDetector | None) -> str | None:
    """Why an image lies too far from the training images' features for the model to judge it, or None."""
    if detector is None or ood_distance is None or ood_distance <= detector.threshold:
        return None
    return (f"This image is unlike the images the model was trained on: its features lie "
            f"{ood_distance / detector.threshold:.1f}× as far from them as the limit that {detector.quantile:.0%} of validation "
            "images stay within. It may not be a brain MRI slice of a kind this model knows, so its answer "
            "would be a guess.")


BLANK_STD = 0.01  # on the [0, 1] scale: below it the model input has no structure a model could read


def blank_reason(model_input: np.ndarray | None) -> str | None:
    """Why an image is too blank to judge (all one value, or nearly: an empty slice, a failed
    export, a black screenshot), or None. Read on the model's input, after the crop, so a small
    head in a large black field still counts as a picture. A network still answers on such an
    input, and confidently: before this check an all-black slice was called ``notumor`` at 99 %."""
    if model_input is None:
        return None
    x = np.asarray(model_input, np.float32)
    per_channel = x.reshape(-1, x.shape[-1]) if x.ndim == 3 else x.reshape(-1, 1)
    if float(per_channel.std(axis=0).max()) >= BLANK_STD:  # each channel on its own: a scale per channel is no picture
        return None
    return ("This image is blank or nearly uniform: it shows no anatomy for the model to judge "
            "(check that the right file or slice was opened, and its window).")


def judge(label: str, ood_distance: float | None, detector: OodDetector | None, calls: dict[str, CallRecord] | None,
          balanced_accuracy: float | None = None, modality: str = "unknown",
          model_input: np.ndarray | None = None) -> tuple[bool, str]:
    """(reliable, reason) for one call, or one mask (``label`` "" and no ``calls``): the file's own
    modality, a blank input, features far from the training images', a call no better than chance."""
    if modality_reason(modality):
        return False, modality_reason(modality) + " Its answer would be a guess."
    blank = blank_reason(model_input)
    if blank:
        return False, blank
    far = ood_reason(ood_distance, detector)
    if far:
        return False, far
    if calls and label in calls and not calls[label].better_than_chance:
        c = calls[label]
        extra = f" (balanced accuracy on new subjects {balanced_accuracy:.0%})" if balanced_accuracy is not None else ""
        return False, (f"On new subjects this model's “{label}” calls were right {c.precision:.0%} of the time, "
                       f"no better than the {c.chance:.0%} expected by chance{extra}: it cannot judge this stage reliably.")
    return True, ""
