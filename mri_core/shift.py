"""How a tumour-type model does on sources other than the tumour set: the cross-source yardstick.

A clinician's scan comes from another hospital, scanner and sequence than the tumour set's, so
the figures that matter are measured on images of other origin, each with a known answer to
"is there a tumour":

- ``lgg_flair``: LGG patients' FLAIR slices, grey (TCGA, several hospitals): a slice with at least
  ``data.MIN_TUMOR_PX`` reference tumour pixels must not be called ``notumor``; one without any
  must be. Slices with a sliver of tumour (1-199 px) are left out.
- ``lgg_t1_pre``, ``lgg_t1_post``: the same slices' pre- and post-contrast T1 channels. No model
  here is trained on them: they measure a sequence never seen. The reference is drawn on FLAIR,
  and a lower-grade glioma often neither enhances nor shows well on T1, so their sensitivity is a
  lower bound; their specificity is exact.
- ``oasis``: OASIS T1 slices of the dementia set: no tumours, so every ``notumor`` call is right.
- ``external_dev``: web-collected tumour slices of mixed sequences, planes and origins
  (``../shared/data/external_dev/tumor``): every slice has a tumour, of unknown type, so any tumour
  class is right. Our ``notumor`` images are web-collected like these and our tumour images are not:
  a model that learned the source calls them ``notumor``. Its misses are what the app must hold
  back or warn about, so their share abstained or warned and their mean confidence are reported.
- ``folder``: any class-per-folder set (the tumour classes' names), scored as tumour or not.

On the shared data only the held-out part is scored: the LGG patients the segmenters and the
tumour model hold out, and the dementia models' validation subjects. Any other folder is scored
whole. Every figure says how many images it rests on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mri_core import data as D
from mri_core.cards import SourceFigures
from mri_core.io import read_image
from mri_core.io.folders import (
    IMAGE_SUFFIXES, LGG_CHANNELS, LggSlice, lgg_channel, list_class_folder, list_lgg, sample_slice,
)
from mri_core.models import LoadedModel, default_model, load
from mri_core.tasks import SHARED_DATA, get_task

CHUNK = 64
NO_TUMOUR = "notumor"
EXTERNAL_DEV = SHARED_DATA / "external_dev"  # tumour/*.jpg: tumour present, type unknown


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def lgg_slices(lgg_dir: Path) -> tuple[list[LggSlice], np.ndarray]:
    """(slices, 1 tumour / 0 tumour-free) of the LGG folder that no model here was trained on:
    the held-out patients of the shared folder, every patient of any other."""
    slices = list_lgg(lgg_dir)
    if _same_folder(lgg_dir, get_task("lgg").data_dir):
        held_out = set(D.lgg_validation_patients(lgg_dir))
        slices = [s for s in slices if s.patient_id in held_out]
    labels = D.lgg_tumor_labels(slices)
    keep = labels >= 0
    return [s for s, k in zip(slices, keep) if k], labels[keep]


def oasis_files(oasis_dir: Path) -> list[Path]:
    """Tumour-free OASIS files no model here was trained on: the dementia models' validation
    subjects of the shared folder, every file of any other (class folders or not)."""
    alz = get_task("alzheimer")
    if _same_folder(oasis_dir, alz.data_dir):
        folder = list_class_folder(oasis_dir, alz.class_names)
        _, val = D.oasis_split(oasis_dir, alz.class_names)
        return [folder.paths[i] for i in val]
    return sorted(p for p in Path(oasis_dir).rglob("*") if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES))


def score_images(loaded: LoadedModel, images, has_tumour: np.ndarray) -> dict:
    """Tumour / no-tumour figures of the model's calls on ``images`` (an iterable of (slice, its
    file's modality), read lazily) whose truth is ``has_tumour``: sensitivity and specificity of the calls as made, the
    share of abstentions, accuracy and sensitivity/specificity on the calls made (not abstained),
    the share of wrong calls that were abstained or warned about, and of the misses (tumour slices
    called ``notumor``) the share abstained or warned and their mean confidence."""
    from mri_core.inference import classify, input_warnings

    truth = np.asarray(has_tumour, bool)
    called_tumour, abstained, warned, confidence = [], [], [], []
    batch = []

    def flush():
        slices, modalities = [b[0] for b in batch], [b[1] for b in batch]
        for image, modality, pred in zip(slices, modalities, classify(loaded, slices, modality=modalities)):
            called_tumour.append(pred.label != NO_TUMOUR)
            abstained.append(not pred.reliable)
            warned.append(bool(input_warnings(image, loaded, pred, modality)))
            confidence.append(pred.confidence)
        batch.clear()

    for item in images:
        batch.append(item)
        if len(batch) == CHUNK:
            flush()
    flush()
    called, abst, warn = np.asarray(called_tumour, bool), np.asarray(abstained, bool), np.asarray(warned, bool)
    right = called == truth
    made = ~abst
    missed = truth & ~called

    def rate(mask):
        return float(mask.mean()) if mask.size else None

    return {
        "n": int(truth.size),
        "n_tumour": int(truth.sum()),
        "n_tumour_free": int((~truth).sum()),
        "sensitivity": rate(called[truth]),
        "specificity": rate(~called[~truth]),
        "abstained": rate(abst),
        "accuracy_on_calls_made": rate(right[made]),
        "sensitivity_on_calls_made": rate(called[truth & made]),
        "specificity_on_calls_made": rate(~called[~truth & made]),
        "wrong_calls": int((~right).sum()),
        "wrong_abstained_or_warned": rate((abst | warn)[~right]),
        "wrong_abstained": rate(abst[~right]),
        "misses": int(missed.sum()),
        "misses_abstained_or_warned": rate((abst | warn)[missed]),
        "misses_mean_confidence": rate(np.asarray(confidence, float)[missed]),
    }


def _lgg_images(slices: list[LggSlice], channel: str):
    c = LGG_CHANNELS.index(channel)
    for s in slices:
        stack = read_image(s.image_path.read_bytes(), s.image_path.name)
        yield lgg_channel(stack.slices[0], c), stack.modality


def _files(paths):

    for p in paths:
        stack = read_image(Path(p).read_bytes(), Path(p).name)
        yield sample_slice(stack), stack.modality


def external_files(external_dir: Path) -> list[Path]:
    """Every image file under ``external_dir`` (its ``tumor/`` folder on the shared data): all tumour slices."""
    return sorted(p for p in Path(external_dir).rglob("*") if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES))


def score_shift(loaded: LoadedModel, lgg_dir: Path | None = None, oasis_dir: Path | None = None,
                folder: Path | None = None, lgg_channels=("flair", "pre-contrast", "post-contrast"),
                external_dir: Path | None = None) -> dict:
    """The cross-source figures of a tumour-type model, one block a source (module docstring)."""
    if NO_TUMOUR not in loaded.class_names:
        raise ValueError(f"{loaded.name} has no {NO_TUMOUR!r} class: the cross-source figures are for tumour-type models")
    out: dict = {}
    if lgg_dir is not None:
        slices, labels = lgg_slices(Path(lgg_dir))
        names = {"flair": "lgg_flair", "pre-contrast": "lgg_t1_pre", "post-contrast": "lgg_t1_post"}
        for channel in lgg_channels:
            out[names[channel]] = {"patients": len({s.patient_id for s in slices}),
                                   **score_images(loaded, _lgg_images(slices, channel), labels)}
    if oasis_dir is not None:
        files = oasis_files(Path(oasis_dir))
        out["oasis"] = score_images(loaded, _files(files), np.zeros(len(files), bool))
    if external_dir is not None:
        files = external_files(Path(external_dir))
        out["external_dev"] = score_images(loaded, _files(files), np.ones(len(files), bool))
    if folder is not None:
        listing = list_class_folder(Path(folder), loaded.class_names)
        truth = np.asarray([loaded.class_names[y] != NO_TUMOUR for y in listing.labels])
        out["folder"] = score_images(loaded, _files(listing.paths), truth)
    return out


def summary(report: dict) -> dict:
    """Sensitivity over every tumour slice and specificity over every tumour-free one of the
    sources the model was not trained on as such, pooled, with the abstention figures."""
    blocks = [b for b in report.values() if isinstance(b, dict) and "n" in b]
    pooled = {}
    for key, count in (("sensitivity", "n_tumour"), ("specificity", "n_tumour_free"), ("abstained", "n")):
        n = sum(b[count] for b in blocks if b[key] is not None)
        pooled[key] = sum(b[key] * b[count] for b in blocks if b[key] is not None) / n if n else None
    wrong = sum(b["wrong_calls"] for b in blocks)
    flagged = sum((b["wrong_abstained_or_warned"] or 0) * b["wrong_calls"] for b in blocks)
    pooled["wrong_abstained_or_warned"] = flagged / wrong if wrong else None
    pooled["n"] = sum(b["n"] for b in blocks)
    return pooled


SPLITS = {
    "lgg_flair": "LGG, the 14 patients held out by patient (seed 42), FLAIR channel as a grey slice",
    "lgg_t1_pre": "LGG, the same 14 held-out patients, pre-contrast T1 channel (a sequence no model here is trained on)",
    "lgg_t1_post": "LGG, the same 14 held-out patients, post-contrast T1 channel (a sequence no model here is trained on)",
    "oasis": "OASIS (dementia set), the dementia models' validation subjects (by pseudo-subject, seed 42)",
    "external_dev": "external_dev: web-collected tumour slices (Chakrabarty's yes/, deduplicated against the tumour set), "
                    "tumour present, type unknown; all of them (none used in training)",
}


def card_record(report: dict) -> dict[str, SourceFigures]:
    """``report`` (``score_shift`` on the shared data) as the card's ``metrics.cross_source``: each
    block labelled with its split, and the pooled summary."""
    blocks = {"summary": summary(report), **{k: {"split": SPLITS.get(k, "a class-per-folder set"), **v} for k, v in report.items()}}
    return {k: SourceFigures.from_json(v) for k, v in blocks.items()}


SHIFT = "brain_tumor-shift"


def evaluate_shift(data_dir: Path | None, model: str | None, lgg: Path | None, oasis: Path | None,
                   external: Path | None = None) -> dict:
    """``shift.score_shift`` for a tumour-type model: the sources that exist of ``lgg``, ``oasis``,
    the class-per-folder ``data_dir`` and the tumour-only ``external``, with a pooled summary."""
    name = model or default_model("brain_tumor")
    loaded = load(name)
    given = (lgg, oasis, data_dir, external)
    skipped = [str(d) for d in given if d is not None and not Path(d).exists()]
    lgg, oasis, data_dir, external = [d if d is not None and Path(d).exists() else None for d in given]
    report = score_shift(loaded, lgg, oasis, data_dir, external_dir=external)
    return {"task": SHIFT, "model": name, "summary": summary(report), **report, "skipped": skipped}
