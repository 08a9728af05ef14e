"""mri_core.training (run as ``python -m mri_core.train``): a smoke run per task kind writes a loadable
model and a complete card; augmentation, callbacks and the recipes' pieces."""

import json

import numpy as np
import pytest

from mri_core.models import list_models, load, read_card
from mri_core.training.augment import AugmentedBatches, change_appearance
from mri_core.training.callbacks import CosineSchedule, WeightAverage
from mri_core.training.classifier import class_weights, fit_temperature


def test_cards_are_complete(tiny_models):
    names = list_models(root=tiny_models)
    assert set(names) == {"brain_tumor_mri_sepnet", "alzheimer_mri_sepnet", "lgg_unet_lite", "lgg_flair_unet_lite"}
    for name in names:
        card = read_card(name, tiny_models)
        for key in ("task", "kind", "class_names", "preprocessing", "architecture", "gradcam_layer", "params",
                    "split", "metrics", "history", "training", "file_mb"):
            assert getattr(card, key) is not None, (name, key)
        assert card.training.command.startswith("python -m mri_core.train")
        assert card.history.curves["loss"], name
        assert card.validation is not None, name
        json.dumps(card.to_json())  # plain JSON


def test_segmenter_card_names_its_intensity_normalization(tiny_models):
    spec = read_card("lgg_unet_lite", tiny_models).preprocessing.intensity
    assert spec.max_gain == 4.0
    assert len(spec.reference_p99) == 3 and all(0.0 < v <= 1.0 for v in spec.reference_p99)


def test_lgg_split_is_by_patient(tiny_models):
    card = read_card("lgg_unet_lite", tiny_models)
    assert card.split.kind == "by patient"
    assert len(card.split.val_patients) == 1
    assert card.segmentation is not None and "top_k" in card.segmentation.key_order


def test_classifier_card_has_calibration(tiny_models):
    card = read_card("brain_tumor_mri_sepnet", tiny_models)
    assert card.calibration.temperature > 0
    assert card.validation.n == card.split.n_val
    m = load("brain_tumor_mri_sepnet", tiny_models)
    assert m.class_names == ["glioma", "meningioma", "notumor", "pituitary"]


def test_class_weights_balance():
    y = np.array([0] * 90 + [1] * 10)
    w = class_weights(y, 2, 1.0)
    assert w[1] / w[0] == 9.0
    assert class_weights(y, 2, 0.0) == {0: 1.0, 1: 1.0}


def test_fit_temperature_softens_overconfidence():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    correct = rng.random(400) < 0.7  # 70 % right, but always 99 % sure
    pred = np.where(correct, y, 1 - y)
    p = np.where(np.eye(2)[pred] > 0, 0.99, 0.01)[:, None, :]
    assert fit_temperature(p, y) > 1.5


def test_resume_keeps_the_earlier_record(tiny_models, synthetic_data, tmp_path):
    from mri_core import train

    first = read_card("brain_tumor_mri_sepnet", tiny_models)
    train.main(["brain_tumor", "--arch", "mri_sepnet", "--data-dir", str(synthetic_data["brain_tumor"]), "--out", str(tmp_path),
                "--epochs", "1", "--size", "32", "--batch-size", "8", "--no-cache", "--checkpoints", str(tmp_path / "ckpt"),
                "--init-from", str(tiny_models / "brain_tumor_mri_sepnet" / "model.keras")])
    card = read_card("brain_tumor_mri_sepnet", tmp_path)
    assert card.training.epochs_run == first.training.epochs_run + 1
    assert len(card.history.curves["loss"]) == card.training.epochs_run == card.history.epochs
    assert card.training.earlier_commands == (first.training.command,)
    assert card.training.resumed_from == str(tiny_models / "brain_tumor_mri_sepnet" / "model.keras")


def _square_image_and_mask(n=6, side=48):
    """A bright square whose mask is the same square: any warp must keep them on top of each other."""
    x = np.zeros((n, side, side, 3), np.float32)
    m = np.zeros((n, side, side, 1), np.uint8)
    x[:, 12:30, 8:26] = 0.8
    m[:, 12:30, 8:26] = 1
    return x, m


def test_augmented_masks_follow_their_images():
    x, m = _square_image_and_mask()
    batches = AugmentedBatches(x, m, 3, seed=0, masks=True, brightness=0.15)
    moved = 0
    for epoch in range(4):
        for i in range(len(batches)):
            images, masks = batches[i]
            assert images.shape == (3, 48, 48, 3) and masks.shape == (3, 48, 48, 1)
            assert set(np.unique(masks)) <= {0.0, 1.0} and images.min() >= 0 and images.max() <= 1
            inside = images[..., 0] > 0.3
            agree = (inside == (masks[..., 0] > 0)).mean()
            assert agree > 0.97, agree  # only the interpolated rim may differ
            moved += int((masks != m[:3]).any())
        batches.on_epoch_end()
    assert moved > 0


def test_augmentation_mirrors_left_right_only():
    x, m = _square_image_and_mask(n=40)
    batches = AugmentedBatches(x, m, 40, seed=1, masks=True, rotate_deg=0, shift=0, zoom=0)
    _, masks = batches[0]
    flipped = m[:, :, ::-1].astype(np.float32)
    same = [(k == m[0]).all() for k in masks]
    mirrored = [(k == flipped[0]).all() for k in masks]
    assert all(s or f for s, f in zip(same, mirrored)) and any(same) and any(mirrored)


def test_augmented_batches_repeat_and_carry_sample_weights():
    rng = np.random.default_rng(0)
    x = rng.random((10, 32, 32, 3)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[np.arange(10) % 2]
    w = np.where(np.arange(10) % 2, 3.0, 1.0)
    a = AugmentedBatches(x, y, 4, seed=7, contrast=0.2, sample_weight=w)
    b = AugmentedBatches(x, y, 4, seed=7, contrast=0.2, sample_weight=w)
    assert len(a) == 3
    seen = []
    for i in range(len(a)):
        xa, ya, wa = a[i]
        xb, _, _ = b[i]
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(wa, np.where(ya[:, 1] == 1, 3.0, 1.0))  # weights stay with their labels
        seen.append(len(xa))
    assert seen == [4, 4, 2]
    a.on_epoch_end()
    assert not np.array_equal(a[0][0], b[0][0])


def test_mixed_precision_run_saves_a_float32_model(synthetic_data, tmp_path):
    import keras

    from mri_core import train

    train.main(["lgg", "--arch", "unet_lite", "--data-dir", str(synthetic_data["lgg"]), "--val-patients", "1",
                "--out", str(tmp_path), "--size", "32", "--batch-size", "8", "--no-cache",
                "--precision", "mixed_bfloat16", "--checkpoints", str(tmp_path / "ckpt"), "--intensity-max-gain", "1",
                "--epochs", "3", "--average-from", "0.01"])
    assert keras.mixed_precision.global_policy().name == "float32"  # restored for the rest of the process
    model = load("lgg_unet_lite", tmp_path).keras_model
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert list((tmp_path / "ckpt").glob("lgg_unet_lite-*/best.keras"))
    card = read_card("lgg_unet_lite", tmp_path)
    assert "mixed_bfloat16" in card.training.command
    assert card.preprocessing.intensity is None  # --intensity-max-gain 1 turns it off
    # The weight average ran in bfloat16 too (batch-norm statistics re-estimated) and was scored.
    average = card.weight_average
    assert average.epochs_averaged == 3 and 0.0 <= average.extra["val_patient_dice_scored"] <= 1.0
    assert isinstance(average.kept, bool)


def test_weight_average_is_the_mean_with_batch_norm_reestimated():
    import keras

    inp = keras.Input((4, 4, 1))
    h = keras.layers.Conv2D(2, 1, name="conv")(inp)
    out = keras.layers.BatchNormalization(name="bn")(h)
    model = keras.Model(inp, out)
    average = WeightAverage(CosineSchedule(1e-3, steps_per_epoch=10, epochs=4, max_minutes=0), 10, start=0.5)
    average.set_model(model)
    kernels = [np.full((1, 1, 1, 2), 1.0, np.float32), np.full((1, 1, 1, 2), 2.0, np.float32),
               np.full((1, 1, 1, 2), 4.0, np.float32)]
    for epoch, k in enumerate(kernels, start=1):  # decay progress 0.33, 0.67, 1.0 at these epochs' ends
        model.get_layer("conv").set_weights([k, np.zeros(2, np.float32)])
        average.on_epoch_end(epoch)
    assert average.count == 2  # the first ended before half the decay: kernels 2 and 4 averaged
    x = np.random.default_rng(0).normal(3.0, 2.0, (64, 4, 4, 1)).astype(np.float32)
    average.apply(model, x, batch_size=64)
    np.testing.assert_allclose(model.get_layer("conv").get_weights()[0], 3.0)
    mean, var = model.get_layer("bn").moving_mean.numpy(), model.get_layer("bn").moving_variance.numpy()
    np.testing.assert_allclose(mean, 3.0 * x.mean(), rtol=1e-4)  # statistics of the averaged network
    np.testing.assert_allclose(var, 9.0 * x.var(), rtol=1e-3)
    assert model.get_layer("bn").momentum == 0.99  # restored


def test_one_sequence_segmenter_starts_from_a_three_sequence_one(tiny_models, synthetic_data, tmp_path):
    """--input-channel flair: a grey model, its card names the sequence, and --init-from a
    three-channel model gives the same maps as that model on the sequence copied three times."""
    import keras

    from mri_core import train
    from mri_core.architectures import create_model
    from mri_core.models import segmenter_for
    from mri_core.training.loop import load_weights_across_channels

    three = keras.saving.load_model(tiny_models / "lgg_unet_lite" / "model.keras", compile=False)
    grey = create_model("unet_lite", num_classes=1, input_size=(32, 32), channels=1)
    load_weights_across_channels(grey, tiny_models / "lgg_unet_lite" / "model.keras")
    x = np.random.default_rng(0).random((2, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(grey.predict(x, verbose=0), three.predict(np.repeat(x, 3, -1), verbose=0), atol=1e-4)

    train.main(["lgg", "--arch", "unet_lite", "--data-dir", str(synthetic_data["lgg"]), "--val-patients", "1",
                "--out", str(tmp_path), "--size", "32", "--batch-size", "8", "--no-cache", "--epochs", "1",
                "--checkpoints", str(tmp_path / "ckpt"), "--input-channel", "flair", "--name", "lgg_flair",
                "--init-from", str(tiny_models / "lgg_unet_lite" / "model.keras")])
    card = read_card("lgg_flair", tmp_path)
    assert card.preprocessing.channels == 1 and card.preprocessing.sequence == "flair"
    assert card.preprocessing.source_channel == 1 and card.is_single_sequence
    assert 0.0 <= card.validation.dice_patient_mean <= 1.0
    # A grey upload gets it; a colour upload the three-sequence default (none is marked default here: the first).
    assert segmenter_for(grey=True, root=tmp_path)[0] == "lgg_flair"
    assert "grey" in segmenter_for(grey=True, root=tmp_path)[1]


def test_appearance_changes_keep_grey_slices_grey_and_in_range():
    x = np.dstack([np.linspace(0, 1, 48 * 48, dtype=np.float32).reshape(48, 48)] * 3)
    for seed in range(10):
        out = change_appearance(np.random.default_rng(seed), x, p=1.0)
        assert out.shape == x.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
        np.testing.assert_array_equal(out[..., 0], out[..., 2])
    assert not np.allclose(change_appearance(np.random.default_rng(0), x, p=1.0), x)
    np.testing.assert_array_equal(change_appearance(np.random.default_rng(0), x, p=0.0), x)


def test_cards_name_the_shared_data_without_a_machines_path(tmp_path):
    from mri_core.tasks import TASKS
    from mri_core.training.card import data_label

    assert data_label(TASKS["lgg"].data_dir) == "data/lgg"
    assert data_label(TASKS["brain_tumor"].data_dir) == "data/brain_tumor/train"
    assert data_label(tmp_path) == str(tmp_path)  # elsewhere: as given


def test_source_shortcut_options_train_a_model_the_app_loads(synthetic_data, tmp_path, monkeypatch):
    """--paste-lesions, --balance-sources, --source-appearance, --source-adversarial and
    --two-questions together, with the other sources (LGG, OASIS) pointed at the synthetic sets:
    the saved model has standard layers only, four probabilities, and its card says what was pasted."""
    from dataclasses import replace

    import keras

    from mri_core import data as D, train
    from mri_core.tasks import TASKS

    monkeypatch.setitem(TASKS, "lgg", replace(TASKS["lgg"], data_dir=synthetic_data["lgg"]))
    monkeypatch.setitem(TASKS, "alzheimer", replace(TASKS["alzheimer"], data_dir=synthetic_data["alzheimer"]))
    monkeypatch.setattr(D, "LGG_VAL_PATIENTS", 1)
    monkeypatch.setattr(D, "MIN_TUMOR_PX", 50)  # the synthetic discs have 113 px
    train.main(["brain_tumor", "--arch", "mri_sepnet", "--data-dir", str(synthetic_data["brain_tumor"]), "--out", str(tmp_path),
                "--epochs", "1", "--size", "32", "--batch-size", "8", "--no-cache", "--checkpoints", str(tmp_path / "ckpt"),
                "--extra-sources", "--paste-lesions", "6", "--balance-sources", "presence", "--source-appearance", "0.5",
                "--source-adversarial", "0.3", "--two-questions"])
    model = keras.saving.load_model(tmp_path / "brain_tumor_mri_sepnet" / "model.keras", compile=False, safe_mode=True)
    assert model.output.shape[-1] == 4 and "tumour_present" in [layer.name for layer in model.layers]
    assert not any(layer.name.startswith("source") for layer in model.layers)
    p = model.predict(np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32"), verbose=0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    split = read_card("brain_tumor_mri_sepnet", tmp_path).split
    pasted = split.extra["pasted_lesions"]  # kept as the card's extra keys
    assert pasted["into_web_notumor"] + pasted["into_oasis_training_slices"] == 6 and pasted["label"] == "glioma"
    assert set(split.extra["sources"]["train"]) == {"tumour_set_hospital_t1c", "tumour_set_web", "lgg_flair", "oasis"}


def test_source_shortcut_options_are_refused_for_a_task_without_sources(synthetic_data, tmp_path):
    from mri_core import train

    with pytest.raises(SystemExit, match="tumour-type task"):
        train.main(["alzheimer", "--arch", "mri_sepnet", "--data-dir", str(synthetic_data["alzheimer"]), "--out", str(tmp_path),
                    "--source-adversarial", "0.3"])
