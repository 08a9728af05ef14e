"""From a read slice to a model's input: the brain crop, channels, size, scale and intensity.

``crop_brain`` is the seeds' contour crop (largest contour, extreme points), made robust:
it never returns an empty array. ``normalize_intensity`` brightens a dark slice to the training
set's level. ``prepare`` applies what a model card's ``preprocessing`` names. Training,
evaluation, batch scoring and the app all call ``prepare``.
"""

from __future__ import annotations

from typing import Any, Mapping

import cv2
import numpy as np

CROP_THRESHOLD = 45  # on the 0-255 scale, as in the seeds
MIN_CROP_FRACTION = 0.05  # a crop smaller than 5 % of the image is noise, not a brain
INTENSITY_FLOOR = 0.02  # below 2 % of full scale is background (air) in these slices
MIN_FOREGROUND = 0.01  # a slice with less foreground than 1 % of its pixels is left as it is


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A display/threshold copy in 0-255; floats are taken as [0, 1]."""
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.floating):
        return (np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    a = image.astype(np.float64)
    lo, hi = a.min(), a.max()
    return np.zeros(a.shape, np.uint8) if hi <= lo else ((a - lo) / (hi - lo) * 255 + 0.5).astype(np.uint8)


def to_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[-1] == 3:
        if image.dtype not in (np.uint8, np.uint16, np.float32):
            image = image.astype(np.float32)
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    if image.ndim == 3 and image.shape[-1] == 1:
        return image[..., 0]
    return image


def to_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    if image.shape[-1] == 1:
        return np.repeat(image, 3, axis=-1)
    return image


def brain_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the largest bright contour; the whole image if none fits."""
    h, w = image.shape[:2]
    whole = (0, h, 0, w)
    if h < 4 or w < 4:
        return whole
    gray = to_uint8(to_gray(image))
    blurred = cv2.GaussianBlur(gray, (5, 5), 0)
    _, thresh = cv2.threshold(blurred, CROP_THRESHOLD, 255, cv2.THRESH_BINARY)
    thresh = cv2.erode(thresh, None, iterations=2)
    thresh = cv2.dilate(thresh, None, iterations=2)
    contours, _ = cv2.findContours(thresh, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return whole
    c = max(contours, key=cv2.contourArea)
    left, right = int(c[:, :, 0].min()), int(c[:, :, 0].max()) + 1
    top, bottom = int(c[:, :, 1].min()), int(c[:, :, 1].max()) + 1
    if (bottom - top) * (right - left) < MIN_CROP_FRACTION * h * w or min(bottom - top, right - left) < 4:
        return whole
    return (top, bottom, left, right)


def crop_brain(image: np.ndarray) -> np.ndarray:
    """Crop a slice to the extreme points of its largest contour (the seeds' crop).

    Works on gray (H, W) or colour (H, W, 3), float in [0, 1] or integer. Blank, tiny,
    all-white or already-cropped images come back whole: the result is never empty.
    """
    top, bottom, left, right = brain_box(image)
    return image[top:bottom, left:right]


def resize(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize to (height, width): area averaging when shrinking, bilinear when growing."""
    h, w = size
    if image.shape[0] == h and image.shape[1] == w:
        return image
    if nearest:
        interp = cv2.INTER_NEAREST
    elif image.shape[0] >= h and image.shape[1] >= w:
        interp = cv2.INTER_AREA
    else:
        interp = cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(image), (w, h), interpolation=interp)
    if image.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out


def channel_p99(image: np.ndarray) -> np.ndarray:
    """Per channel of (H, W, C) in [0, 1]: the 99th percentile of the foreground pixels
    (above ``INTENSITY_FLOOR``); NaN for a channel with too little foreground to tell."""
    flat = image.reshape(-1, image.shape[-1])
    out = np.full(flat.shape[1], np.nan, np.float32)
    for c in range(flat.shape[1]):
        fg = flat[:, c][flat[:, c] > INTENSITY_FLOOR]
        if fg.size >= MIN_FOREGROUND * flat.shape[0]:
            out[c] = np.percentile(fg, 99)
    return out


def intensity_gain(image: np.ndarray, reference_p99, max_gain: float) -> np.ndarray:
    """Per channel: the factor ``normalize_intensity`` multiplies by (1 where there is too little
    foreground to tell)."""
    p99 = channel_p99(image)
    known = np.isfinite(p99) & (p99 > 0)
    gain = np.where(known, np.asarray(reference_p99, np.float32) / np.where(known, p99, 1.0), 1.0)
    return np.clip(gain, 1.0, max_gain).astype(np.float32)


def normalize_intensity(image: np.ndarray, reference_p99, max_gain: float) -> np.ndarray:
    """Brighten each channel of (H, W, C) so its foreground 99th percentile reaches
    ``reference_p99``, by a gain between 1 and ``max_gain``; clipped to [0, 1].

    MR intensities have no fixed unit: one scanner's FLAIR comes out at a third of another's, and
    a network trained on typical slices misses a lesion in a slice that dark, so dark slices are
    lifted to the training level; bright ones are left alone (docs/experiments.md).
    """
    gain = intensity_gain(image, reference_p99, max_gain)
    if np.all(gain == 1.0):
        return image
    return np.clip(image * gain, 0.0, 1.0)


def prepare(image: np.ndarray, preprocessing: Mapping[str, Any]) -> np.ndarray:
    """One slice (float in [0, 1]) to a model input (H, W, C) float32, as the card says.

    ``preprocessing`` holds ``crop`` (bool), ``size`` ([height, width]), ``channels`` (1 or 3)
    and, optionally, ``intensity`` (``reference_p99`` per channel and ``max_gain``, applied by
    ``normalize_intensity`` at model size) and ``source_channel`` (a one-sequence model given a
    three-sequence slice takes that channel of it, not a mix of all three).
    """
    img = np.asarray(image, dtype=np.float32)
    if "source_channel" in preprocessing and img.ndim == 3 and img.shape[-1] == 3:
        img = img[..., int(preprocessing["source_channel"])]
    if preprocessing.get("crop", False):
        img = crop_brain(img)
    channels = int(preprocessing["channels"])
    img = to_gray(img)[..., None] if channels == 1 else to_rgb(img)
    img = resize(img, tuple(preprocessing["size"]))
    if "intensity" in preprocessing:
        spec = preprocessing["intensity"]
        img = normalize_intensity(img, spec["reference_p99"], float(spec["max_gain"]))
    return np.ascontiguousarray(img, dtype=np.float32)
