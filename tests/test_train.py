"""mri_core.train: a smoke run per task kind writes a loadable model and a complete card."""

import json

import numpy as np

from mri_core.models import list_models, load, read_card
from mri_core.train import class_weights, fit_temperature


def test_cards_are_complete(tiny_models):
    names = list_models(root=tiny_models)
    assert set(names) == {"brain_tumor_mri_sepnet", "alzheimer_mri_sepnet", "lgg_unet_lite"}
    for name in names:
        card = read_card(name, tiny_models)
        for key in ("task", "kind", "class_names", "preprocessing", "architecture", "gradcam_layer", "params",
                    "split", "metrics", "history", "training", "file_mb"):
            assert key in card, (name, key)
        assert card["training"]["command"].startswith("python -m mri_core.train")
        assert card["history"]["loss"], name
        json.dumps(card)  # plain JSON


def test_lgg_split_is_by_patient(tiny_models):
    card = read_card("lgg_unet_lite", tiny_models)
    assert card["split"]["kind"] == "by patient"
    assert len(card["split"]["val_patients"]) == 1
    assert "top_k" in card["segmentation"]


def test_classifier_card_has_calibration(tiny_models):
    card = read_card("brain_tumor_mri_sepnet", tiny_models)
    assert card["calibration"]["temperature"] > 0
    assert card["metrics"]["validation"]["n"] == card["split"]["n_val"]
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
                "--epochs", "1", "--size", "32", "--batch-size", "8", "--no-cache",
                "--init-from", str(tiny_models / "brain_tumor_mri_sepnet" / "model.keras")])
    card = read_card("brain_tumor_mri_sepnet", tmp_path)
    assert card["training"]["epochs_run"] == first["training"]["epochs_run"] + 1
    assert len(card["history"]["loss"]) == card["training"]["epochs_run"]
    assert card["training"]["earlier_commands"] == [first["training"]["command"]]
