"""Training batches with MRI-safe augmentation, made on the host with OpenCV so the same pipeline
serves the TensorFlow backend and the JAX backend on a GPU."""

from __future__ import annotations

import cv2
import keras
import numpy as np

from mri_core.training.sources import cross_source_appearance


class AugmentedBatches(keras.utils.PyDataset):
    """Shuffled training batches, each image through its own random affine warp (OpenCV, on the host).

    MRI-safe transforms only: left-right mirror (brains are near-symmetric; never up-down), a small
    rotation, shift and zoom with black fill, and an intensity change (contrast about the image
    mean, or a brightness factor). ``masks`` get the same warp as their image, bilinear then
    thresholded at 0.5, as Keras's layers did. On the host rather than as Keras layers, whose
    interpolating gathers made each step several times dearer under JAX (docs/experiments.md).

    Batch ``i`` of epoch ``e`` is drawn from ``default_rng([seed, e, i])``, so worker threads can
    make batches in any order and a run repeats.

    Against source shortcuts (``training.sources``): ``probabilities`` draws each epoch's images
    with replacement by those weights (sampling balanced by source) instead of a permutation;
    ``source_appearance`` is the probability of each cross-source change (histogram matching onto
    ``references``, film border, tint); ``extra_targets`` (name -> per-image array) makes the
    targets a dict, the class targets under ``probs``, for a model with more outputs.
    """

    def __init__(self, x, targets, batch_size: int, seed: int, *, masks: bool = False,
                 rotate_deg: float = 14.4, shift: float = 0.06, zoom: float = 0.1,
                 contrast: float = 0.0, brightness: float = 0.0, appearance: float = 0.0, sample_weight=None,
                 workers: int = 4, probabilities=None, source_appearance: float = 0.0, references=None,
                 extra_targets: dict | None = None):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        self.x, self.targets, self.batch_size, self.seed = x, targets, batch_size, seed
        self.masks, self.rotate_deg, self.shift, self.zoom = masks, rotate_deg, shift, zoom
        self.contrast, self.brightness, self.sample_weight = contrast, brightness, sample_weight
        self.appearance = appearance
        self.probabilities, self.source_appearance, self.references = probabilities, source_appearance, references
        self.extra_targets = extra_targets
        self.epoch = 0
        self.order = self._order(0)

    def __len__(self) -> int:
        return int(np.ceil(len(self.x) / self.batch_size))

    def _order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])
        if self.probabilities is None:
            return rng.permutation(len(self.x))
        return rng.choice(len(self.x), len(self.x), replace=True, p=self.probabilities)

    def on_epoch_end(self):
        self.epoch += 1
        self.order = self._order(self.epoch)

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
        if self.source_appearance:
            out = cross_source_appearance(rng, out, self.source_appearance, self.references)
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
        if self.extra_targets:
            batch = (batch[0], {"probs": batch[1], **{k: np.asarray(v[idx], np.float32) for k, v in self.extra_targets.items()}})
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
