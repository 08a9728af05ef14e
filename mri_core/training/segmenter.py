"""The segmenter recipe: Dice + binary cross-entropy, patients split apart, intensity normalisation
fitted on the training slices, checkpoints on the per-patient Dice of the masks the app draws, the
presence rule chosen on validation."""

from __future__ import annotations

import time

import keras
import numpy as np

from mri_core import data as D
from mri_core.io.folders import LGG_CHANNELS, list_lgg
from mri_core.architectures import create_model
from mri_core.cards import Card
from mri_core.inference import segmentation_maps
from mri_core.scoring import score_lgg
from mri_core.segmentation import fit_intensity, per_patient_dice, presence_rule, scored_patient_dice
from mri_core.training.augment import AugmentedBatches
from mri_core.training.card import finish, fit_segmenter_reliability, interim_card, interim_model
from mri_core.training.loop import checkpoint_path, fit, load_weights_across_channels, optimizer


def dice_bce_loss(y_true, y_pred):
    from keras import ops

    # float32 whatever the compute precision: bfloat16 sums over 36,000 pixels lose the Dice.
    y_true, y_pred = ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")
    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred))
    inter = ops.sum(y_true * y_pred, axis=(1, 2, 3))
    denom = ops.sum(y_true, axis=(1, 2, 3)) + ops.sum(y_pred, axis=(1, 2, 3))
    dice = (2.0 * inter + 1.0) / (denom + 1.0)
    return bce + 1.0 - ops.mean(dice)


def segmenter_preprocessing(args, size: int) -> dict:
    """The card's ``preprocessing``: no crop, three sequences, or the one of ``--input-channel``."""
    pre = {"crop": False, "size": [size, size], "channels": 3, "scale": "[0, 1]"}
    if args.input_channel:  # one sequence, grey; a three-sequence slice given to it gives up that channel
        pre.update(channels=1, source_channel=LGG_CHANNELS.index(args.input_channel), sequence=args.input_channel)
    return pre


def segmenter_data(args, data_dir, pre: dict):
    """(slices, masks, patient ids, training indices, validation indices, split record), split by
    patient; with ``--intensity-max-gain`` the intensity fit goes into ``pre`` and ``x`` is normalised."""
    t0 = time.time()
    x, m, patients, has_tumor = D.load_lgg(data_dir, pre, cache=not args.no_cache)
    print(f"loaded {len(x)} slices {x.shape[1:]} in {time.time() - t0:.0f} s", flush=True)
    tr, va, val_ids = D.patient_split(patients, has_tumor, args.val_patients, args.seed)
    if args.limit:
        tr, va = tr[: args.limit], va[: max(args.limit // 4, 8)]
    if args.intensity_max_gain > 1:
        pre["intensity"] = fit_intensity(x, tr, args.intensity_max_gain)
    split = {
        "kind": "by patient",
        "seed": args.seed,
        "n_train": int(len(tr)),
        "n_val": int(len(va)),
        "n_train_patients": int(len(np.unique(patients[tr]))),
        "val_patients": sorted(set(patients[va].tolist())),
    }
    return x, m, patients, tr, va, split


def _scored_dice_monitor(xva: np.ndarray, mva: np.ndarray, pva: np.ndarray):
    def monitor(mdl):
        # Checkpoints are chosen on the masks the app draws (presence rule, main lesion): the raw
        # thresholded maps, which the first runs were chosen on, count false alarms that
        # post-processing removes and ranked epochs differently.
        probs = segmentation_maps(lambda v: mdl.predict(v, batch_size=64, verbose=0), xva)
        raw = per_patient_dice(probs >= 0.5, mva[..., 0], pva)
        value = scored_patient_dice(probs, mva, pva, presence_rule(probs, mva))
        return "val_patient_dice_scored", value, {"val_patient_dice": raw}

    return monitor


def train_segmenter(args, task, arch) -> Card:
    size = args.size or arch.input_size[0]
    pre = segmenter_preprocessing(args, size)
    data_dir = args.data_dir or task.data_dir
    x, m, patients, tr, va, split = segmenter_data(args, data_dir, pre)

    def build():
        return create_model(arch.name, num_classes=1, input_size=(size, size), channels=pre["channels"])

    model = create_model(arch.name, num_classes=1, input_size=(size, size), channels=pre["channels"],
                         **({"weights": str(args.imagenet_weights)} if args.imagenet_weights else {}))
    if args.init_from:
        load_weights_across_channels(model, args.init_from)
    model.compile(optimizer=optimizer(args.lr, args.weight_decay), loss=dice_bce_loss)
    batches = AugmentedBatches(x[tr], m[tr], args.batch_size, args.seed, masks=True,
                               rotate_deg=18.0, shift=0.06, zoom=0.1, brightness=0.15)
    xva, mva, pva = x[va], m[va].astype(bool), patients[va]
    ckpt = checkpoint_path(args)
    fitted = fit(model, batches, (xva, mva.astype(np.float32)), args, _scored_dice_monitor(xva, mva, pva), x[tr], ckpt, build)
    best = fitted.model
    card = interim_card(task, pre)
    if fitted.weight_average:
        card.update(weight_average=fitted.weight_average)
    rule = presence_rule(segmentation_maps(lambda v: best.predict(v, batch_size=64, verbose=0), xva), mva)
    card.update(segmentation=rule.to_json())
    val_slices = [s for s in list_lgg(data_dir) if s.patient_id in set(split["val_patients"])]
    report = score_lgg(interim_model(args, card, best, ckpt), val_slices)
    reliability, detector = fit_segmenter_reliability(best, x, m, tr, va)
    card.update(reliability=reliability)
    return finish(args, arch, card, split, fitted, {"validation": report}, detector)
