"""Train a model and write it with its card: ``python -m mri_core.train TASK --arch NAME [options]``.

Parses the command and dispatches to the task's recipe (``training.classifier`` or
``training.segmenter``) under the chosen precision policy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import keras

from mri_core.io.folders import LGG_CHANNELS
from mri_core.architectures import get_architecture
from mri_core.models import default_root
from mri_core.tasks import TASKS, get_task
from mri_core.training.classifier import train_classifier
from mri_core.training.segmenter import train_segmenter

CHECKPOINTS = Path(__file__).resolve().parent.parent.parent / "checkpoints"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m mri_core.train", description=__doc__.split("\n")[0])
    p.add_argument("task", choices=list(TASKS))
    p.add_argument("--arch", required=True, help="architecture name from mri_core.architectures")
    p.add_argument("--name", help="model name (folder under models/); default TASK_ARCH")
    p.add_argument("--data-dir", type=Path, help="default: ../shared/data/<task>[/train]")
    p.add_argument("--out", type=Path, default=default_root(), help="models folder")
    p.add_argument("--size", type=int, help="input side in pixels (default: the architecture's)")
    p.add_argument("--channels", type=int, choices=[1, 3])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--label-smoothing", type=float, default=0.05)
    p.add_argument("--class-weight-power", type=float, default=1.0, help="1 = fully balanced, 0 = none")
    p.add_argument("--val-fraction", type=float, default=0.12)
    p.add_argument("--val-patients", type=int, default=14, help="LGG: patients held out for validation")
    p.add_argument("--patience", type=int, default=8)
    p.add_argument("--max-minutes", type=float, default=0, help="stop after this much training time (0: no limit)")
    p.add_argument("--limit", type=int, default=0, help="use only this many training images (smoke runs)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--init-from", type=Path, help="start from the weights of this .keras file (resume a run)")
    p.add_argument("--extra-sources", action="store_true",
                   help="brain_tumor: add LGG patients' FLAIR slices (tumour -> glioma, none -> notumor) and OASIS slices "
                        "(notumor) from those sets' own training splits, so no class comes from one source alone")
    p.add_argument("--appearance", type=float, default=0.0,
                   help="classifiers: probability of each appearance change (gamma, blur, resampling, noise, JPEG)")
    shortcut = p.add_argument_group("against source shortcuts (brain_tumor; issue 26, docs/experiments.md)")
    shortcut.add_argument("--paste-lesions", type=int, default=0, metavar="N",
                          help="add N training images labelled glioma: LGG training patients' FLAIR lesions pasted "
                               "into web-collected notumor images (half) and OASIS training slices (half), intensity "
                               "and size matched to the host brain (training.lesions)")
    shortcut.add_argument("--balance-sources", choices=["off", "class", "presence"], default="off",
                          help="draw training images so every source weighs the same within each class (class) or "
                               "within tumour present / absent (presence), every group the same (training.sources)")
    shortcut.add_argument("--source-appearance", type=float, default=0.0, metavar="P",
                          help="probability of each cross-source change: histogram matching onto another source's "
                               "image, film-like border, tint (with --appearance: gamma, blur, resampling, noise, JPEG)")
    shortcut.add_argument("--source-adversarial", type=float, default=0.0, metavar="WEIGHT",
                          help="train a source classifier behind gradient reversal of this weight on the pooled "
                               "features (training only: not in the saved model); 0 = off")
    shortcut.add_argument("--two-questions", action="store_true",
                          help="a tumour-present sigmoid and a type softmax asked only when present, combined into "
                               "the class probabilities the app reads (training.heads)")
    p.add_argument("--input-channel", choices=list(LGG_CHANNELS),
                   help="lgg: train on this one sequence of the three (e.g. flair), given as a grey slice")
    p.add_argument("--imagenet-weights", type=Path,
                   help="ImageNet weights file for the backbone: a Keras Applications one, or for efficientnet_lite0 and "
                        "unet_efficientnet_lite0 models/pretrained/efficientnet_lite0_imagenet.weights.h5")
    p.add_argument("--default", action="store_true", help="mark as the task's default model")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32",
                   help="mixed_bfloat16 computes in bfloat16 (faster for the U-Nets on CPUs with AMX / AVX512-BF16, "
                        "slower for MobileNetV3; see the README); "
                        "the model saved is float32 either way")
    p.add_argument("--intensity-max-gain", type=float, default=4.0,
                   help="segmenters: brighten dark slices to the training slices' level by up to this gain "
                        "(preprocess.normalize_intensity; 1 = off)")
    p.add_argument("--average-from", type=float, default=0.0,
                   help="stochastic weight averaging: average the weights of every epoch that ends after this "
                        "fraction of the learning-rate decay (e.g. 0.5), re-estimate batch norm, keep the mean "
                        "if it scores better than the best epoch (0: off)")
    p.add_argument("--checkpoints", type=Path, default=CHECKPOINTS,
                   help="folder for the best-so-far checkpoints (on a lent GPU: under $OUT, so a killed run still returns them)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for the card's command
    task = get_task(args.task)
    arch = get_architecture(args.arch)
    if arch.kind != task.kind:
        raise SystemExit(f"{args.arch} is a {arch.kind}; task {args.task} needs a {task.kind}")
    args.name = args.name or f"{args.task}_{args.arch}"
    shortcut_options = args.two_questions or args.balance_sources != "off" or args.source_adversarial or args.paste_lesions
    if shortcut_options and "notumor" not in task.class_names:
        raise SystemExit("the options against source shortcuts are for the tumour-type task (its images carry a source)")

    keras.utils.set_random_seed(args.seed)
    keras.mixed_precision.set_global_policy(args.precision)
    try:
        if task.kind == "classifier":
            train_classifier(args, task, arch)
        else:
            train_segmenter(args, task, arch)
    finally:
        keras.mixed_precision.set_global_policy("float32")  # the policy is process-wide
