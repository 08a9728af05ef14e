"""Where each training image comes from, and making that unreadable: sampling balanced by source
within each class, and appearance changes that move an image's look to another source's.

The tumour set's three tumour classes come from one hospital's contrast-enhanced T1 and its
``notumor`` class from web-collected yes/no sets (../shared/README.md); LGG FLAIR and OASIS slices
are sources of their own. A network that can tell the source can call the class from it; these
tools take that signal out of the data (issue 26).
"""

from __future__ import annotations

import cv2
import numpy as np

# Source names, one per collection an image comes from.
HOSPITAL_T1C, WEB, LGG_FLAIR, OASIS = "tumour_set_hospital_t1c", "tumour_set_web", "lgg_flair", "oasis"
SOURCES = (HOSPITAL_T1C, WEB, LGG_FLAIR, OASIS)
QUANTILES = np.linspace(0.0, 1.0, 33)


def tumour_set_sources(y: np.ndarray, class_names) -> np.ndarray:
    """The source of each image of the tumour set, from its class: ``notumor`` web-collected, the
    tumour classes the hospital's (the set records no per-image origin)."""
    notumor = list(class_names).index("notumor")
    return np.where(np.asarray(y) == notumor, WEB, HOSPITAL_T1C)


def balanced_probabilities(groups: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Sampling probability of each image so that within each group (a class, or tumour present
    or not) every source weighs the same, and every group the same: 1 / (groups x sources in the
    group x images of that source in the group)."""
    groups, sources = np.asarray(groups), np.asarray(sources)
    p = np.zeros(len(groups), np.float64)
    uniq = np.unique(groups)
    for g in uniq:
        in_g = groups == g
        srcs = np.unique(sources[in_g])
        for s in srcs:
            cell = in_g & (sources == s)
            p[cell] = 1.0 / (len(uniq) * len(srcs) * cell.sum())
    return p / p.sum()


def source_quantiles(x: np.ndarray, sources: np.ndarray, per_source: int, seed: int) -> dict[str, np.ndarray]:
    """Up to ``per_source`` brain intensity quantile curves (``QUANTILES``) per source: the
    references histogram matching draws from."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in np.unique(sources):
        idx = np.flatnonzero(sources == s)
        idx = rng.choice(idx, min(per_source, len(idx)), replace=False)
        out[str(s)] = np.stack([_brain_quantiles(x[i].mean(axis=-1)) for i in idx])
    return out


def _brain_quantiles(gray: np.ndarray) -> np.ndarray:
    inside = gray[gray > 0.05]
    return np.quantile(inside if inside.size > 16 else gray, QUANTILES).astype(np.float32)


def match_histogram(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``image`` (H, W, C) in [0, 1] with the intensities inside its head mapped, quantile to
    quantile, onto ``reference`` (a ``QUANTILES`` curve); the dark background stays dark."""
    gray = image.mean(axis=-1)
    own = _brain_quantiles(gray)
    own = np.maximum.accumulate(own + np.arange(len(own)) * 1e-6)  # strictly increasing for interp
    mapped = np.interp(gray, own, reference).astype(np.float32)
    mapped = np.where(gray > 0.05, mapped, gray)
    ratio = mapped / np.maximum(gray, 1e-6)
    return np.clip(image * ratio[..., None], 0.0, 1.0).astype(np.float32)


def film_border(rng, image: np.ndarray) -> np.ndarray:
    """The slice as a photographed film or a screenshot shows it: shrunk inside a light or grey
    frame of random width, sometimes with a thin bright rule, as web-collected slices often are."""
    h, w = image.shape[:2]
    f = rng.uniform(0.75, 0.95)
    inner = cv2.resize(image, (max(int(w * f), 4), max(int(h * f), 4)), interpolation=cv2.INTER_AREA).reshape(
        max(int(h * f), 4), max(int(w * f), 4), image.shape[-1])
    out = np.full(image.shape, rng.uniform(0.0, 0.9), np.float32)
    top, left = int(rng.integers(0, h - inner.shape[0] + 1)), int(rng.integers(0, w - inner.shape[1] + 1))
    out[top : top + inner.shape[0], left : left + inner.shape[1]] = inner
    if rng.random() < 0.5:
        out[max(top - 2, 0) : max(top - 1, 1), :] = 1.0
    return out


def tint(rng, image: np.ndarray, strength: float = 0.12) -> np.ndarray:
    """A colour cast (a photographed film, a monitor): each channel scaled by its own factor. A
    one-channel image is left as it is (the model sees no colour)."""
    if image.shape[-1] != 3:
        return image
    factors = np.exp(rng.uniform(-strength, strength, 3)).astype(np.float32)
    return np.clip(image * factors, 0.0, 1.0)


def cross_source_appearance(rng, image: np.ndarray, p: float, references: dict[str, np.ndarray] | None) -> np.ndarray:
    """Each with probability ``p``: histogram matching onto a random image of a random source,
    a film-like border, a tint."""
    out = image
    if references and rng.random() < p:
        curves = references[list(references)[int(rng.integers(len(references)))]]
        out = match_histogram(out, curves[int(rng.integers(len(curves)))])
    if rng.random() < p:
        out = film_border(rng, out)
    if rng.random() < p:
        out = tint(rng, out)
    return out.astype(np.float32)
