"""Score a model on a folder: ``python -m mri_core.evaluate TASK DATA_DIR [--model NAME] --json``.

This is how the hidden test sets are scored, so it walks exactly the app's path (``mri_core.scoring``).

Classifiers: DATA_DIR has one folder per class. LGG: DATA_DIR has the layout of
``../shared/data/lgg`` (``slices.csv`` with patient_id, image_path, mask_path, has_tumor).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mri_core.io.folders import LGG_CHANNELS
from mri_core.scoring import evaluate
from mri_core.shift import SHIFT, evaluate_shift
from mri_core.shift import EXTERNAL_DEV
from mri_core.tasks import TASKS, get_task


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mri_core.evaluate", description="Score a trained model on a folder.")
    p.add_argument("task", choices=[*TASKS, SHIFT],
                   help=f"{SHIFT}: the tumour-type model on other sources than the tumour set (mri_core.shift)")
    p.add_argument("data_dir", type=Path, nargs="?",
                   help=f"the folder to score; with {SHIFT}, optional: a class-per-folder set of other-source images")
    p.add_argument("--model", help="model name under models/ (default: the task's default model)")
    p.add_argument("--lgg", type=Path, default=get_task("lgg").data_dir,
                   help=f"{SHIFT}: LGG folder (default: the shared one, its held-out patients only)")
    p.add_argument("--oasis", type=Path, default=get_task("alzheimer").data_dir,
                   help=f"{SHIFT}: OASIS slices (default: the dementia set, its validation subjects only)")
    p.add_argument("--external", type=Path, default=EXTERNAL_DEV,
                   help=f"{SHIFT}: tumour-only slices of other origin, type unknown (default: the shared external_dev, "
                        "web-collected): sensitivity, and the misses' share abstained or warned and mean confidence")
    p.add_argument("--channels", choices=list(LGG_CHANNELS),
                   help="lgg: give the model only this sequence of each slice, grey, and (without --model) "
                        "choose the model as the app does for a grey upload")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.task != SHIFT and args.data_dir is None:
        p.error(f"{args.task} needs a DATA_DIR")
    return args


def print_report(result: dict) -> None:
    """The report as aligned lines, without the long per-class, per-patient and per-file blocks."""
    for k, v in result.items():
        if k not in ("confusion", "per_class", "dice_per_patient", "unreadable"):
            print(f"{k:>22}: {v}")
    if "per_class" in result:
        for c, m in result["per_class"].items():
            print(f"{c:>22}: precision {m['precision']:.3f} recall {m['recall']:.3f} f1 {m['f1']:.3f} n={m['support']}")


def main(argv=None):
    args = parse_args(argv)
    if args.task == SHIFT:
        result = evaluate_shift(args.data_dir, args.model, args.lgg, args.oasis, args.external)
        print(json.dumps(result) if args.json else json.dumps(result, indent=1))
        return 0
    try:
        result = evaluate(args.task, args.data_dir, args.model, args.channels)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    if args.json:
        print(json.dumps(result))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
