"""Write each task's validation split as a folder ``mri_core.evaluate`` scores, so a change can be
checked against the figures it must not move.

    python -m scripts.validation_folders [OUT]          # default OUT: cache/valsplits
    python -m mri_core.evaluate lgg cache/valsplits/lgg --model lgg_unet_lite --json

The folders hold symbolic links to the shared data, split exactly as the bundled models were:
tumour type stratified (seed 42, 12 %), dementia stage by pseudo-subject, LGG by patient (14).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from mri_core import data as D
from mri_core.io.folders import list_class_folder
from mri_core.tasks import TASKS

ROOT = Path(__file__).resolve().parent.parent


def link_class_folder(task: str, val_index, out: Path, data_dir: Path | None = None) -> int:
    """Link the images at ``val_index`` of the task's class-per-folder set into ``out/<class>/``."""
    t = TASKS[task]
    folder = list_class_folder(data_dir or t.data_dir, t.class_names)
    for i in val_index:
        path = folder.paths[i]
        target = out / t.class_names[folder.labels[i]] / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(path.resolve())
    return len(val_index)


def link_lgg(out: Path, data_dir: Path | None = None) -> int:
    """Link the held-out LGG patients' folders into ``out`` with their rows of ``slices.csv``."""
    src = Path(data_dir or TASKS["lgg"].data_dir)
    val = set(D.lgg_validation_patients(src))
    with open(src / "slices.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    keep = [r for r in rows if r["patient_id"] in val]
    out.mkdir(parents=True, exist_ok=True)
    for pid in sorted(val):
        (out / pid).symlink_to((src / pid).resolve())
    with open(out / "slices.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(keep)
    return len(keep)


def write_all(out: Path) -> dict[str, int]:
    """The three validation folders under ``out`` (each skipped where it already exists)."""
    counts = {}
    bt, al, lgg = out / "brain_tumor", out / "alzheimer", out / "lgg"
    if not bt.exists():
        labels = list_class_folder(TASKS["brain_tumor"].data_dir, TASKS["brain_tumor"].class_names).labels
        counts["brain_tumor"] = link_class_folder("brain_tumor", D.stratified_split(labels, D.VAL_FRACTION, D.SPLIT_SEED)[1], bt)
    if not al.exists():
        task = TASKS["alzheimer"]
        counts["alzheimer"] = link_class_folder("alzheimer", D.oasis_split(task.data_dir, task.class_names)[1], al)
    if not lgg.exists():
        counts["lgg"] = link_lgg(lgg)
    return counts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.validation_folders", description=__doc__.split("\n\n")[0])
    p.add_argument("out", nargs="?", type=Path, default=ROOT / "cache" / "valsplits")
    print(write_all(p.parse_args(argv).out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
