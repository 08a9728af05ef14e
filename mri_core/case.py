"""One clinician's case: the scan, the slice being read, the model's masks and the hand edits.

A page keeps one :class:`Case` per uploaded file in the session (keyed by the file's content
hash, :func:`content_key`), so every page shows the same scan at the same slice, and whatever is
shown, exported or reported comes from the one mask the case stores (:meth:`Case.mask`).

Hand edits are stored as mask arrays, one history per (model, slice): a canvas stroke becomes a
new array once (:meth:`Case.apply_canvas` ignores a canvas result it has already taken), so a
rerun or a download cannot change an edit. ``undo`` steps back one edit, ``reset`` returns to
the model's mask (itself an edit that ``undo`` can take back). After either, the editing canvas
must start again from the stored mask: :meth:`Case.canvas` then gives a new canvas key.

No Streamlit here: the page only keeps the object in ``st.session_state``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import numpy as np

from mri_core.annotate import apply_canvas
from mri_core.io import ImageStack, UnreadableImage, read_images_with_sources
from mri_core.measure import Measurements, measure
from mri_core.segmentation import is_present

MODEL = None  # a history entry meaning "the model's own mask"
AUTOMATIC, SEMIAUTOMATIC, MANUAL = "AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"  # Case.mask_origin


def content_key(parts: list[bytes]) -> str:
    """The content hash that names a case: sha1 of the file's bytes (of each file's sha1, in
    order, for a series or slices joined into one volume)."""
    if len(parts) == 1:
        return hashlib.sha1(parts[0]).hexdigest()
    h = hashlib.sha1()
    for p in parts:
        h.update(hashlib.sha1(p).digest())
    return h.hexdigest()


def stack_key(stack: ImageStack) -> str:
    """The key of a volume made from several files (a DICOM series, slices joined as one volume):
    the hash of its pixels in slice order and its geometry, so the same slices in another order,
    or under other names, are another case."""
    return content_key([stack.slices.tobytes(), repr((stack.spacing_mm, stack.slice_thickness_mm)).encode()])


def read_scans(files: list[tuple[str, bytes]]) -> list[tuple[str, ImageStack | UnreadableImage, str]]:
    """(label, stack or error, case key) for each scan in ``files``: a single file is keyed by the
    hash of its own bytes, a series joined from several files by :func:`stack_key`. Never by file
    name: two files both called ``slice.png`` are two scans with two keys."""
    out = []
    for label, result, sources in read_images_with_sources(files):
        if len(sources) == 1:
            key = content_key([files[sources[0]][1]])
        else:
            key = stack_key(result) if isinstance(result, ImageStack) else ""
        out.append((label, result, key))
    return out


@dataclass(frozen=True)
class SliceMask:
    """What a page draws for one slice of a segmented case (``Case.slice_mask``)."""

    mask: np.ndarray  # as it stands: the last hand edit, or the model's
    tumour_probability: float  # the model's, from the whole volume (hand edits do not change it)
    edited: bool  # the mask differs from the model's
    measurements: Measurements  # of ``mask``, in mm where the scan gives its spacing
    reason: str = ""  # why the model cannot judge this slice (``SegPrediction.reason``); empty when it can

    @property
    def present(self) -> bool | None:
        """The model's call, tumour on the slice or not; None (no call) where it cannot judge it."""
        return None if self.reason else is_present(self.tumour_probability)


@dataclass
class CanvasState:
    version: int
    colour: str
    opacity: float
    base: np.ndarray  # the mask the canvas was started from (its initial drawing)
    taken: str | None = None  # digest of the last canvas result turned into an edit


@dataclass
class Case:
    key: str  # content hash of the file(s)
    name: str  # file name as uploaded (or the sample's)
    stack: ImageStack
    index: int = 0  # the slice being read, 0-based (shown from 1)
    sample: bool = False  # a bundled sample, not the user's scan
    truth: str | None = None  # known answer of a bundled sample
    truth_mask_path: str | None = None  # bundled LGG sample's ground truth
    opened: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    _model: dict[str, tuple[np.ndarray, np.ndarray, tuple[str, ...]]] = field(default_factory=dict, repr=False)
    _history: dict[tuple[str, int], list[np.ndarray | None]] = field(default_factory=dict, repr=False)
    _canvas: dict[tuple[str, int], CanvasState] = field(default_factory=dict, repr=False)
    _versions: int = 0
    truth_masks: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # slice -> uploaded ground truth

    def __post_init__(self) -> None:
        self.index = int(min(max(self.index, 0), self.stack.n_slices - 1))

    # ------------------------------------------------------------------ the model's result

    def has_model(self, model: str) -> bool:
        return model in self._model

    def set_model_result(self, model: str, masks: np.ndarray, probs: np.ndarray, reasons=None) -> None:
        """The model's masks, tumour probabilities and, per slice, why it cannot judge it ("" where it can)."""
        masks = np.asarray(masks, bool)
        if masks.shape[:3] != self.stack.slices.shape[:3]:
            raise ValueError(f"masks {masks.shape} do not match the scan {self.stack.slices.shape[:3]}")
        masks.setflags(write=False)
        self._model[model] = (masks, np.asarray(probs, float), tuple(reasons) if reasons is not None else ("",) * len(masks))

    def model_mask(self, model: str, k: int) -> np.ndarray:
        return self._model[model][0][k]

    def tumour_probability(self, model: str, k: int) -> float:
        return float(self._model[model][1][k])

    def abstention(self, model: str, k: int) -> str:
        """Why the model cannot judge slice ``k`` ("" where it can)."""
        return self._model[model][2][k]

    # ------------------------------------------------------------------ the mask shown

    def mask(self, model: str, k: int) -> np.ndarray:
        """The slice's mask as it stands: the last edit, or the model's."""
        history = self._history.get((model, k))
        state = history[-1] if history else MODEL
        return self.model_mask(model, k) if state is MODEL else state

    def slice_mask(self, model: str, k: int) -> SliceMask:
        """The slice's mask as it stands, the model's tumour probability for it, and its measurements."""
        mask = self.mask(model, k)
        return SliceMask(mask, self.tumour_probability(model, k), self.edited(model, k), measure(mask, self.stack.spacing_mm),
                         self.abstention(model, k))

    def masks(self, model: str) -> np.ndarray:
        """(n, H, W): every slice's mask as it stands (for the volume and the exports)."""
        return np.stack([self.mask(model, k) for k in range(self.stack.n_slices)])

    def edited(self, model: str, k: int | None = None) -> bool:
        """Whether the slice's mask (any slice's, with ``k`` None) differs from the model's."""
        ks = range(self.stack.n_slices) if k is None else [k]
        return any(not np.array_equal(self.mask(model, j), self.model_mask(model, j)) for j in ks)

    def edited_slices(self, model: str) -> list[int]:
        return [k for k in range(self.stack.n_slices) if (model, k) in self._history and self.edited(model, k)]

    def mask_origin(self, model: str) -> str:
        """Who made the masks as they stand, in DICOM's words (SegmentAlgorithmType): AUTOMATIC (the
        model's, untouched), SEMIAUTOMATIC (the model's, edited by hand) or MANUAL (edited so that
        no voxel of the model's mask is left: drawn by a person from nothing)."""
        if not self.edited(model):
            return AUTOMATIC
        model_masks = self._model[model][0]
        return MANUAL if not (self.masks(model) & model_masks).any() else SEMIAUTOMATIC

    def can_undo(self, model: str, k: int) -> bool:
        return bool(self._history.get((model, k)))

    def set_mask(self, model: str, k: int, mask: np.ndarray) -> bool:
        """Store ``mask`` as the slice's new edit; False (nothing stored) if it changes nothing."""
        mask = np.asarray(mask, bool)
        if mask.shape != self.model_mask(model, k).shape:
            raise ValueError(f"mask {mask.shape} does not match the slice {self.model_mask(model, k).shape}")
        if np.array_equal(mask, self.mask(model, k)):
            return False
        mask = mask.copy()
        mask.setflags(write=False)
        self._history.setdefault((model, k), []).append(mask)
        return True

    def undo(self, model: str, k: int) -> bool:
        history = self._history.get((model, k))
        if not history:
            return False
        history.pop()
        self._restart_canvas(model, k)
        return True

    def reset(self, model: str, k: int) -> bool:
        """Back to the model's mask (an edit of its own, so ``undo`` can bring the edits back)."""
        changed = self.edited(model, k)
        if changed:
            self._history.setdefault((model, k), []).append(MODEL)
        self._restart_canvas(model, k)
        return changed

    # ------------------------------------------------------------------ the editing canvas

    def _restart_canvas(self, model: str, k: int) -> None:
        self._canvas.pop((model, k), None)

    def canvas(self, model: str, k: int, colour: str, opacity: float,
               mounted: Callable[[str], bool] = lambda key: True) -> tuple[str, np.ndarray]:
        """(widget key, starting mask) of the editing canvas for the slice. The canvas starts from
        the mask as it stands. Its key changes, so it starts again from the stored mask, after an
        undo or a reset, when the colour or opacity change, and when the canvas was not on screen
        on the last run (``mounted(key)`` False: correction turned off, another page or slice
        looked at), since a canvas drawn again starts from its key's starting mask and a stroke
        on it would otherwise be read against a mask from before the edits already taken.
        Otherwise the key stays, and so does the canvas's own drawing."""
        state = self._canvas.get((model, k))
        key = None if state is None else self._canvas_key(model, k, state.version)
        if state is None or state.colour != colour or state.opacity != opacity or not mounted(key):
            self._versions += 1
            state = CanvasState(self._versions, colour, opacity, self.mask(model, k))
            self._canvas[(model, k)] = state
            key = self._canvas_key(model, k, state.version)
        return key, state.base

    def _canvas_key(self, model: str, k: int, version: int) -> str:
        return f"mask_canvas_{self.key[:10]}_{model}_{k}_{version}"

    def canvas_given(self, model: str, k: int) -> tuple[str, np.ndarray] | None:
        """(widget key, starting mask) the slice's editing canvas was last given (None before it is drawn)."""
        state = self._canvas.get((model, k))
        return None if state is None else (self._canvas_key(model, k, state.version), state.base)

    def apply_canvas(self, model: str, k: int, rgba: np.ndarray | None) -> bool:
        """Turn the canvas's drawing into an edit, once: the same result seen again (a rerun, a
        download) changes nothing. Returns whether a new edit was stored."""
        state = self._canvas.get((model, k))
        if rgba is None or state is None:
            return False
        a = np.ascontiguousarray(rgba)
        digest = hashlib.sha1(a.tobytes()).hexdigest() + str(a.shape)
        if digest == state.taken:
            return False
        state.taken = digest
        return self.set_mask(model, k, apply_canvas(state.base, a, state.colour, state.opacity))

    # ------------------------------------------------------------------ ground truth

    def set_truth(self, k: int, mask: np.ndarray) -> None:
        self.truth_masks = {k: np.asarray(mask, bool)}  # one ground truth at a time, for the slice it was given on

    def clear_truth(self) -> None:
        self.truth_masks = {}
