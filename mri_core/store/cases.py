"""A case as the database keeps it: the model's masks, every hand edit (each as the mask array,
in the order the case holds them, with when it was made), the calls, and the scan's pixels only
where an admin turned that on.

``snapshot(case)`` reads a ``mri_core.case.Case`` into a ``CaseSnapshot``; ``restore`` replays one
into a new ``Case`` through its own methods (``set_model_result``, ``set_mask``, ``reset``), so a
reopened case is the case that was saved, Undo included. Arrays go to an ``.npz`` read back with
``allow_pickle=False``: nothing in the database can run code.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from mri_core.case import MODEL, Case
from mri_core.io import ImageStack


@dataclass(frozen=True)
class Call:
    """A classifier's call on one slice, as the page showed it."""

    model: str
    slice: int  # 0-based
    label: str
    confidence: float
    reliable: bool


@dataclass
class CaseSnapshot:
    manifest: dict  # JSON-able: models, histories (with times), calls, slice index
    arrays: dict[str, np.ndarray] = field(repr=False)

    def digest(self) -> str:
        """What the saved copy is compared with: the same digest, nothing new to save (times left out)."""
        h = hashlib.sha1(json.dumps(_without_times(self.manifest), sort_keys=True).encode())
        for name in sorted(self.arrays):
            h.update(name.encode() + self.arrays[name].tobytes())
        return h.hexdigest()

    def encode(self) -> tuple[str, bytes]:
        buf = io.BytesIO()
        np.savez_compressed(buf, **self.arrays)
        return json.dumps(self.manifest, sort_keys=True), buf.getvalue()

    @classmethod
    def decode(cls, manifest: str, arrays: bytes) -> "CaseSnapshot":
        with np.load(io.BytesIO(arrays), allow_pickle=False) as npz:
            return cls(json.loads(manifest), {name: npz[name] for name in npz.files})

    def edited_slices(self) -> int:
        return sum(1 for h in self.manifest["histories"] if h["entries"])

    def calls(self) -> list[Call]:
        return [Call(**c) for c in self.manifest["calls"]]


def _without_times(manifest: dict) -> dict:
    return {**manifest, "histories": [{**h, "entries": [e["array"] for e in h["entries"]]} for h in manifest["histories"]]}


def _pack(mask: np.ndarray) -> np.ndarray:
    return np.packbits(np.asarray(mask, bool), axis=None)


def _unpack(packed: np.ndarray, shape) -> np.ndarray:
    return np.unpackbits(packed, count=int(np.prod(shape))).astype(bool).reshape(shape)


def snapshot(case: Case, calls: list[Call], previous: CaseSnapshot | None = None) -> CaseSnapshot:
    """The case as it stands. An edit already in ``previous`` (same slice, place and mask) keeps
    the time it was first saved; a new one is stamped now."""
    now = datetime.now(timezone.utc).isoformat()
    arrays: dict[str, np.ndarray] = {}
    models = []
    for i, (name, (masks, probs, reasons)) in enumerate(case._model.items()):  # Case keeps no public list of them
        arrays[f"model{i}_masks"], arrays[f"model{i}_probs"] = _pack(masks), np.asarray(probs, np.float64)
        models.append({"name": name, "shape": list(masks.shape), "reasons": list(reasons)})
    known = _edit_times(previous)
    histories = []
    for j, ((name, k), entries) in enumerate(sorted(case._history.items(), key=lambda kv: (kv[0][0], kv[0][1]))):
        listed = []
        for n, entry in enumerate(entries):
            array = None
            if entry is not MODEL:
                array = f"edit{j}_{n}"
                arrays[array] = _pack(entry)
            digest = None if array is None else hashlib.sha1(arrays[array].tobytes()).hexdigest()
            listed.append({"array": array, "digest": digest, "made": known.get((name, k, n, digest), now)})
        histories.append({"model": name, "slice": k, "entries": listed})
    manifest = {"index": case.index, "models": models, "histories": histories,
                "calls": [c.__dict__ for c in sorted(calls, key=lambda c: (c.model, c.slice))]}
    return CaseSnapshot(manifest, arrays)


def _edit_times(previous: CaseSnapshot | None) -> dict:
    if previous is None:
        return {}
    return {(h["model"], h["slice"], n, e["digest"]): e["made"]
            for h in previous.manifest["histories"] for n, e in enumerate(h["entries"])}


def restore(case: Case, saved: CaseSnapshot) -> None:
    """Put the saved model masks and hand edits into a freshly opened ``case`` of the same scan."""
    shapes = {tuple(m["shape"]) for m in saved.manifest["models"]}
    if shapes and shapes != {tuple(case.stack.slices.shape[:3])}:
        raise ValueError("the saved case does not match this scan's shape")
    for i, m in enumerate(saved.manifest["models"]):
        case.set_model_result(m["name"], _unpack(saved.arrays[f"model{i}_masks"], m["shape"]),
                              saved.arrays[f"model{i}_probs"], m["reasons"])
    shape_of = {m["name"]: tuple(m["shape"][1:]) for m in saved.manifest["models"]}
    for h in saved.manifest["histories"]:
        for e in h["entries"]:
            if e["array"] is None:
                case.reset(h["model"], h["slice"])
            else:
                case.set_mask(h["model"], h["slice"], _unpack(saved.arrays[e["array"]], shape_of[h["model"]]))
    case.index = min(max(int(saved.manifest["index"]), 0), case.stack.n_slices - 1)


def encode_pixels(stack: ImageStack) -> bytes:
    """The scan's slices and geometry (no patient fields, no DICOM headers), for reopening without the file."""
    buf = io.BytesIO()
    meta = {"format": stack.format, "modality": stack.modality, "spacing_mm": stack.spacing_mm,
            "slice_thickness_mm": stack.slice_thickness_mm, "windows": stack.windows}
    extra = {"affine": stack.affine} if stack.affine is not None else {}
    np.savez_compressed(buf, slices=stack.slices, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **extra)
    return buf.getvalue()


def decode_pixels(data: bytes) -> ImageStack:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        meta = json.loads(npz["meta"].tobytes())
        spacing = tuple(meta["spacing_mm"]) if meta["spacing_mm"] else None
        return ImageStack(npz["slices"], meta["format"], meta["modality"], spacing, meta["slice_thickness_mm"],
                          notes=["Reopened from the pixels kept in the case database (no DICOM header: no DICOM SEG export)."],
                          affine=npz["affine"] if "affine" in npz.files else None,
                          windows=[tuple(w) for w in meta["windows"]])
