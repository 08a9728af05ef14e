"""What the tumour-mask models say on slices from other sources, as the app would answer an upload:
the model ``models.segmenter_for`` picks (a grey upload gets the one-sequence model), through
``inference.segment`` and the pages' warnings. Prints one JSON line per source.

    python -m scripts.segmenter_shift [--per-source 100] [--grey-lgg]

Sources: the LGG validation patients (split as the bundled segmenters were), and the tumour-type
and dementia sets' folders, which the segmenters never saw. "wrong" is the presence call against
the folder's label (a tumour-type folder other than ``notumor`` shows a tumour); "flagged" is
abstained on or warned about. The figures are in docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from mri_core import inference, models, segmentation
from mri_core.data import lgg_tumor_labels, lgg_validation_patients
from mri_core.io import read_image
from mri_core.io.folders import LGG_CHANNELS, lgg_channel, list_class_folder, list_lgg
from mri_core.tasks import TASKS


def _pick(paths: list[Path], n: int, rng) -> list[Path]:
    return [paths[i] for i in sorted(rng.choice(len(paths), min(n, len(paths)), replace=False))]


def sources(n: int, seed: int = 0):
    """(label, image paths, shows a tumour, LGG or not) per source, ``n`` slices each."""
    rng = np.random.default_rng(seed)
    lgg = TASKS["lgg"].data_dir
    val = set(lgg_validation_patients(lgg))
    slices = [s for s in list_lgg(lgg) if s.patient_id in val]
    labels = lgg_tumor_labels(slices)
    yield "LGG validation, tumour >= 200 px", [s.image_path for s, y in zip(slices, labels) if y == 1][:n], True, True
    yield "LGG validation, tumour-free", _pick([s.image_path for s, y in zip(slices, labels) if y == 0], n, rng), False, True
    tumour = TASKS["brain_tumor"]
    folder = list_class_folder(tumour.data_dir, tumour.class_names)
    for k, name in enumerate(tumour.class_names):
        paths = [p for p, y in zip(folder.paths, folder.labels) if y == k]
        yield f"tumour set, {name}", _pick(paths, n, rng), name != "notumor", False
    dementia = TASKS["alzheimer"]
    yield "OASIS (dementia set)", _pick(list(list_class_folder(dementia.data_dir, dementia.class_names).paths), n, rng), False, False


def score_source(loaded: dict, paths: list[Path], tumour: bool, flair_only: bool) -> dict:
    grey_name, colour_name = models.segmenter_for(True)[0], models.segmenter_for(False)[0]
    p, warned, held, used = [], [], [], set()
    for path in paths:
        stack = read_image(path.read_bytes(), path.name)
        image = stack.slices[0]
        if flair_only:
            image = lgg_channel(image, LGG_CHANNELS.index("flair"))  # a single-sequence export of the same slice
        name = colour_name if image.ndim == 3 and stack.is_color else grey_name
        pred = inference.segment(loaded[name], [image])[0]
        p.append(pred.tumour_probability)
        held.append(not pred.reliable)
        warned.append(bool(inference.input_warnings(image, loaded[name])))
        used.add(name)
    p, held, warned = np.asarray(p), np.asarray(held), np.asarray(warned)
    present = segmentation.is_present(p)
    wrong = present != tumour
    return {"n": len(p), "models": sorted(used), "called_tumour": round(float(present.mean()), 3), "wrong": int(wrong.sum()),
            "wrong_confident": int((wrong & (np.abs(p - 0.5) > 0.4)).sum()),
            "wrong_warned": int((wrong & warned).sum()), "abstained": round(float(held.mean()), 3),
            "wrong_abstained": int((wrong & held).sum()), "wrong_not_flagged": int((wrong & ~held & ~warned).sum())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.segmenter_shift", description=__doc__.split("\n\n")[0])
    p.add_argument("--per-source", type=int, default=100, help="slices per source (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grey-lgg", action="store_true", help="give the LGG slices as their FLAIR channel alone (grey)")
    args = p.parse_args(argv)
    names = {models.segmenter_for(True)[0], models.segmenter_for(False)[0]}
    loaded = {n: models.load(n) for n in names}
    for label, paths, tumour, is_lgg in sources(args.per_source, args.seed):
        figures = score_source(loaded, paths, tumour, flair_only=args.grey_lgg and is_lgg)
        print(json.dumps({"source": label + (" (FLAIR alone)" if args.grey_lgg and is_lgg else ""), **figures}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
