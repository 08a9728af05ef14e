"""When a classifier's call can be trusted, and a plain-language reason when it cannot.

Two checks, both measured on data the model was not trained on:

- **Out of distribution.** The Mahalanobis distance (Lee et al., NeurIPS 2018) of an image's
  penultimate features (the global average pool before the classifier) to the nearest class
  mean, under one covariance shared by the classes. Means and covariance are fitted on the
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

import numpy as np

OOD_FILE = "ood.npz"
FEATURE_LAYER = "gap"  # the architectures' global average pool before dropout and the classifier
VAL_QUANTILE = 0.98  # the threshold lets 98 % of the in-distribution validation images through
WILSON_Z = 1.645  # one-sided 95 %


@dataclass(frozen=True)
class OodDetector:
    """Class means (K, D), the shared precision matrix (D, D) and the distance threshold."""

    means: np.ndarray
    precision: np.ndarray
    threshold: float

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of ``features`` (N, D) to the nearest class mean."""
        f = np.asarray(features, np.float64)
        d2 = []
        for mu in self.means:
            diff = f - mu
            d2.append(np.einsum("nd,de,ne->n", diff, self.precision, diff))
        return np.sqrt(np.maximum(np.min(d2, axis=0), 0.0))

    def save(self, path: Path) -> None:
        np.savez_compressed(path, means=self.means.astype(np.float32), precision=self.precision.astype(np.float32),
                            threshold=np.float64(self.threshold))

    @classmethod
    def load(cls, path: Path) -> "OodDetector":
        z = np.load(path)
        return cls(z["means"].astype(np.float64), z["precision"].astype(np.float64), float(z["threshold"]))


def fit_gaussians(features: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(class means, shared precision) of training features; the covariance is shrunk (Ledoit-Wolf)
    because a few thousand images cannot pin down hundreds of dimensions."""
    from sklearn.covariance import LedoitWolf

    f = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    means = np.stack([f[labels == k].mean(axis=0) if np.any(labels == k) else f.mean(axis=0) for k in range(n_classes)])
    centred = f - means[labels]
    return means, LedoitWolf().fit(centred).precision_


def fit_detector(train_features, train_labels, n_classes: int, val_features, quantile: float = VAL_QUANTILE) -> OodDetector:
    """The detector fitted on training features, with its threshold at ``quantile`` of the
    validation images' distances."""
    means, precision = fit_gaussians(train_features, train_labels, n_classes)
    unthresholded = OodDetector(means, precision, np.inf)
    return OodDetector(means, precision, float(np.quantile(unthresholded.distance(val_features), quantile)))


def features_model(keras_model, layer: str = FEATURE_LAYER):
    """A model giving (probabilities, penultimate features) in one pass; it shares the layers of
    ``keras_model`` and leaves it unchanged."""
    import keras

    return keras.Model(keras_model.inputs, [keras_model.outputs[0], keras_model.get_layer(layer).output])


def probs_and_features(model, x: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, features) for inputs ``x`` through a ``features_model``."""
    probs, feats = [], []
    for i in range(0, len(x), batch):
        p, f = model.predict_on_batch(x[i : i + batch])
        probs.append(np.asarray(p))
        feats.append(np.asarray(f))
    return np.concatenate(probs), np.concatenate(feats)


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


def judge(label: str, ood_distance: float | None, detector: OodDetector | None, calls: dict | None,
          balanced_accuracy: float | None = None) -> tuple[bool, str]:
    """(reliable, reason) for one call."""
    if detector is not None and ood_distance is not None and ood_distance > detector.threshold:
        return False, (f"This image is unlike the images the model was trained on (feature distance {ood_distance:.0f}; "
                       f"98 % of validation images are within {detector.threshold:.0f}). It may not be a brain MRI slice "
                       "of a kind this model knows, so its answer would be a guess.")
    if calls and label in calls and not calls[label]["better_than_chance"]:
        c = calls[label]
        extra = f" (balanced accuracy on new subjects {balanced_accuracy:.0%})" if balanced_accuracy is not None else ""
        return False, (f"On new subjects this model's “{label}” calls were right {c['precision']:.0%} of the time, "
                       f"no better than the {c['chance']:.0%} expected by chance{extra}: it cannot judge this stage reliably.")
    return True, ""
