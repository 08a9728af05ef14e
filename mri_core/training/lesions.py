"""Lesion pasting: LGG FLAIR lesions, cut through their reference masks, pasted into tumour-free
slices of other sources, which are then labelled glioma.

Our ``notumor`` images are web-collected and our tumour images are not, so "looks web-collected"
predicts ``notumor`` (docs/experiments.md, issue 26). A web-collected or OASIS slice with a lesion
pasted in, labelled glioma, breaks that shortcut. The paste is made to look like a lesion of the
host, not of the donor: its intensity is the donor's contrast to its own brain (z-scores inside
the donor's brain mask) laid on the host's brain mean and spread; its size is the donor's share of
its brain, applied to the host's brain; its edge is soft; and it lies inside the host's brain only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

EDGE_SIGMA = 2.0  # px of the donor slice: the feathering of the lesion's edge
MARGIN = 6  # px kept around the lesion's box, so the feathered edge is not cut off
MAX_BRAIN_SHARE = 0.25  # a donor high or low in the head (little brain in its mask) would fill a host's brain


@dataclass(frozen=True)
class Lesion:
    z: np.ndarray  # (h, w) float32: the donor's intensity as z-scores of its own brain
    alpha: np.ndarray  # (h, w) float32 in [0, 1]: the soft lesion mask
    brain_share: float  # lesion area / donor brain area


def brain_mask(gray: np.ndarray) -> np.ndarray:
    """The head in a slice (H, W) in [0, 1], as bool: Otsu's threshold on the blurred slice, holes
    filled, the largest connected part kept. Empty for a blank slice."""
    u8 = np.clip(gray * 255 + 0.5, 0, 255).astype(np.uint8)
    if int(u8.max()) - int(u8.min()) < 8:
        return np.zeros(gray.shape, bool)
    blurred = cv2.GaussianBlur(u8, (5, 5), 0)
    _, fg = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n < 2:
        return np.zeros(gray.shape, bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    part = (labels == largest).astype(np.uint8)
    contours, _ = cv2.findContours(part, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(part)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def _mean_spread(gray: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    values = gray[mask]
    return float(values.mean()), float(max(values.std(), 1e-3))


def cut_lesion(flair: np.ndarray, mask: np.ndarray) -> Lesion | None:
    """The lesion of one donor slice (FLAIR (H, W) in [0, 1], its reference mask), or None where
    the mask or the brain is empty."""
    lesion = np.asarray(mask) > 0
    brain = brain_mask(flair) | lesion
    if not lesion.any() or brain.sum() < 2 * lesion.sum():  # no lesion, or no brain found around it
        return None
    mean, spread = _mean_spread(flair, brain & ~lesion) if (brain & ~lesion).any() else _mean_spread(flair, brain)
    rows, cols = np.flatnonzero(lesion.any(1)), np.flatnonzero(lesion.any(0))
    top, bottom = max(rows[0] - MARGIN, 0), min(rows[-1] + MARGIN + 1, flair.shape[0])
    left, right = max(cols[0] - MARGIN, 0), min(cols[-1] + MARGIN + 1, flair.shape[1])
    alpha = cv2.GaussianBlur(lesion[top:bottom, left:right].astype(np.float32), (0, 0), EDGE_SIGMA)
    z = (flair[top:bottom, left:right].astype(np.float32) - mean) / spread
    return Lesion(z=z, alpha=np.clip(alpha / max(alpha.max(), 1e-6), 0, 1), brain_share=float(lesion.sum() / brain.sum()))


def lesion_bank(lgg_dir: Path, patients: set[str], limit: int, seed: int, min_px: int) -> list[Lesion]:
    """Up to ``limit`` lesions cut from the FLAIR channel of the LGG slices of ``patients`` (training
    patients only: no validation patient is a donor) with at least ``min_px`` tumour pixels."""
    from mri_core.io import read_image
    from mri_core.io.folders import LGG_CHANNELS, lgg_channel, list_lgg, read_mask

    slices = [s for s in list_lgg(lgg_dir) if s.patient_id in patients and s.has_tumor]
    rng = np.random.default_rng(seed)
    bank = []
    for i in rng.permutation(len(slices)):
        if len(bank) >= limit:
            break
        mask = read_mask(slices[i].mask_path)
        if mask.sum() < min_px:
            continue
        image = read_image(slices[i].image_path.read_bytes(), slices[i].image_path.name).slices[0]
        lesion = cut_lesion(lgg_channel(image, LGG_CHANNELS.index("flair")), mask)
        if lesion is not None:
            bank.append(lesion)
    return bank


def _placed(rng, lesion: Lesion, brain: np.ndarray, size_jitter: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(z, alpha) of ``lesion`` scaled to its share of the host ``brain``, turned and mirrored at
    random, and laid at a random place of the host's size; None if it cannot fit inside the brain."""
    area = float(lesion.alpha.sum())
    scale = np.sqrt(min(lesion.brain_share, MAX_BRAIN_SHARE) * brain.sum() / max(area, 1.0)) * np.exp(rng.uniform(-size_jitter, size_jitter))
    h, w = (max(int(round(d * scale)), 3) for d in lesion.alpha.shape)
    if h >= brain.shape[0] or w >= brain.shape[1]:
        return None
    z = cv2.resize(lesion.z, (w, h), interpolation=cv2.INTER_LINEAR)
    alpha = cv2.resize(lesion.alpha, (w, h), interpolation=cv2.INTER_LINEAR)
    k = int(rng.integers(4))
    z, alpha = np.rot90(z, k), np.rot90(alpha, k)
    if rng.random() < 0.5:
        z, alpha = z[:, ::-1], alpha[:, ::-1]
    h, w = alpha.shape
    inner = cv2.erode(brain.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    centres = np.argwhere(inner[h // 2 : brain.shape[0] - (h - h // 2), w // 2 : brain.shape[1] - (w - w // 2)])
    if not len(centres):
        return None
    r, c = centres[rng.integers(len(centres))]
    full_z, full_a = np.zeros(brain.shape, np.float32), np.zeros(brain.shape, np.float32)
    full_z[r : r + h, c : c + w], full_a[r : r + h, c : c + w] = z, alpha
    return full_z, full_a * inner


def paste_lesion(rng, host: np.ndarray, lesion: Lesion, size_jitter: float = 0.3) -> np.ndarray | None:
    """``host`` (H, W, C) in [0, 1], grey, with ``lesion`` pasted inside its brain at the host's
    brain mean and spread; None where the host has no brain mask or the lesion cannot fit."""
    gray = host.mean(axis=-1)
    brain = brain_mask(gray)
    if brain.sum() < 64:
        return None
    placed = _placed(rng, lesion, brain, size_jitter)
    if placed is None or placed[1].max() < 0.5:
        return None
    z, alpha = placed
    mean, spread = _mean_spread(gray, brain)
    value = np.clip(mean + z * spread, 0.0, 1.0)
    out = gray * (1 - alpha) + value * alpha
    return np.repeat(out[..., None], host.shape[-1], axis=-1).astype(np.float32)


def paste_into(rng, hosts: np.ndarray, bank: list[Lesion], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n images, the index of each one's host): lesions of ``bank`` pasted into hosts drawn at
    random from ``hosts``; a host that cannot take a lesion is passed over."""
    images, used = [], []
    for _ in range(20 * n):
        if len(images) == n or not bank or not len(hosts):
            break
        i = int(rng.integers(len(hosts)))
        pasted = paste_lesion(rng, hosts[i], bank[int(rng.integers(len(bank)))])
        if pasted is not None:
            images.append(pasted)
            used.append(i)
    shape = (0, *hosts.shape[1:])
    return (np.stack(images) if images else np.zeros(shape, np.float32)), np.asarray(used, int)


def pasted_training_images(task, pre: dict, x: np.ndarray, y: np.ndarray, sources: np.ndarray, n: int, seed: int,
                           cache: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(images, labels, sources, record): ``n`` glioma images made by pasting lesions of the LGG
    training patients into tumour-free training images: half into the web-collected ``notumor``
    images among ``x`` (``sources`` says which), half into OASIS slices of the dementia set's
    training subjects. Each keeps its host's source: a web-collected slice with a tumour exists now."""
    from mri_core import data as D
    from mri_core.io.folders import list_lgg
    from mri_core.tasks import get_task
    from mri_core.training.sources import OASIS, WEB

    rng = np.random.default_rng([seed, 26])
    lgg_dir, alz = get_task("lgg").data_dir, get_task("alzheimer")
    donors = {s.patient_id for s in list_lgg(lgg_dir)} - set(D.lgg_validation_patients(lgg_dir))
    bank = lesion_bank(lgg_dir, donors, limit=max(n, 50), seed=seed, min_px=D.MIN_TUMOR_PX)
    notumor = task.class_names.index("notumor")
    web_hosts = x[(np.asarray(y) == notumor) & (np.asarray(sources) == WEB)]
    xo, _, _ = D.load_classification(alz.data_dir, alz.class_names, pre, cache=cache)
    oasis_train, _ = D.oasis_split(alz.data_dir, alz.class_names, cache=cache)
    oasis_hosts = xo[oasis_train]
    web, _ = paste_into(rng, web_hosts, bank, n - n // 2)
    oasis, _ = paste_into(rng, oasis_hosts, bank, n // 2)
    images = np.concatenate([web, oasis])
    glioma = task.class_names.index("glioma")
    record = {"lesions": len(bank), "donors": "LGG training patients' FLAIR (not the 14 validation patients)",
              "into_web_notumor": int(len(web)), "into_oasis_training_slices": int(len(oasis)), "label": "glioma",
              "method": "training.lesions: host brain mean/spread, donor's brain share, soft edge, inside the brain"}
    print(f"pasted lesions: {len(web)} web-collected notumor + {len(oasis)} OASIS hosts, {len(bank)} lesions", flush=True)
    return images, np.full(len(images), glioma, y.dtype), np.asarray([WEB] * len(web) + [OASIS] * len(oasis)), record
