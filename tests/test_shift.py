"""mri_core.shift: the cross-source figures of a tumour-type model, and the CLI that prints them."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mri_core import data as D, shift
from mri_core.cards import Card
from mri_core.models import LoadedModel
from mri_core.reliability import OodDetector, features_model

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]


@pytest.fixture(scope="module")
def brightness_model():
    """A real Keras classifier that calls a bright slice glioma and a dark one notumor: its
    feature (the global average pool) is the slice's mean brightness."""
    import keras

    inp = keras.Input((32, 32, 1))
    gap = keras.layers.GlobalAveragePooling2D(name="gap")(inp)
    dense = keras.layers.Dense(4, activation="softmax", name="probs")
    model = keras.Model(inp, dense(gap))
    dense.set_weights([np.array([[20.0, 0.0, -20.0, 0.0]], np.float32), np.array([-10.0, -10.0, 10.0, -10.0], np.float32)])
    card = Card.from_json({"task": "brain_tumor", "kind": "classifier", "class_names": CLASSES,
                           "preprocessing": {"crop": False, "size": [32, 32], "channels": 1, "scale": "[0, 1]"}})
    return LoadedModel("brightness", card, model, Path("brightness.keras"))


def uniform(value):
    """A slice of mean brightness ``value``, as ``score_images`` takes it: with its file's modality.
    Two halves 0.1 apart, not one value: a blank slice is abstained on before any call."""
    image = np.full((40, 40), value, np.float32)
    image[:, :20] += 0.05
    image[:, 20:] -= 0.05
    return image, "unknown"


def test_score_images_counts_calls_against_the_truth(brightness_model):
    r = shift.score_images(brightness_model, [uniform(0.8), uniform(0.2), uniform(0.2)], np.array([1, 0, 1]))
    assert (r["n"], r["n_tumour"], r["n_tumour_free"]) == (3, 2, 1)
    assert r["sensitivity"] == 0.5 and r["specificity"] == 1.0
    assert r["wrong_calls"] == 1 and r["abstained"] == 0.0 and r["accuracy_on_calls_made"] == pytest.approx(2 / 3)


def test_misses_are_reported_with_their_confidence(brightness_model):
    r = shift.score_images(brightness_model, [uniform(0.8), uniform(0.2), uniform(0.6), uniform(0.2)], np.array([1, 1, 1, 0]))
    assert r["misses"] == 1 and r["misses_abstained_or_warned"] == 0.0  # no detector, nothing to warn about
    # The dark tumour slice is called notumor from logits (-6, -10, 6, -10): softmax 0.99999...
    logits = np.array([20 * 0.2 - 10, -10, -20 * 0.2 + 10, -10])
    assert r["misses_mean_confidence"] == pytest.approx(np.exp(logits[2]) / np.exp(logits).sum(), abs=1e-4)
    assert r["sensitivity"] == pytest.approx(2 / 3)
    none_missed = shift.score_images(brightness_model, [uniform(0.8)], np.array([1]))
    assert none_missed["misses"] == 0 and none_missed["misses_mean_confidence"] is None


def test_abstentions_are_counted_apart_from_the_calls_made(brightness_model):
    import dataclasses

    # Features near 0.8 only: the dark slices are far from the training features.
    detector = OodDetector([np.array([[0.8]])], [np.array([[100.0]])], [1.0], threshold=2.0)
    model = dataclasses.replace(brightness_model, ood=detector, features_model=features_model(brightness_model.keras_model, ["gap"]))
    r = shift.score_images(model, [uniform(0.8), uniform(0.2), uniform(0.2)], np.array([1, 0, 1]))
    assert r["abstained"] == pytest.approx(2 / 3)
    assert r["wrong_abstained"] == 1.0 and r["wrong_abstained_or_warned"] == 1.0
    assert r["misses"] == 1 and r["misses_abstained_or_warned"] == 1.0
    assert r["accuracy_on_calls_made"] == 1.0 and r["sensitivity_on_calls_made"] == 1.0
    assert r["specificity_on_calls_made"] is None  # the only tumour-free slice was abstained on
    assert r["sensitivity"] == 0.5  # the calls as made are still counted


@pytest.fixture(scope="module")
def external_folder(tmp_path_factory):
    """The layout of ../shared/data/external_dev: tumour/*.jpg, one bright and two dark slices."""
    from PIL import Image

    root = tmp_path_factory.mktemp("external_dev")
    (root / "tumor").mkdir()
    for i, value in enumerate((220, 40, 40)):
        Image.fromarray(np.full((48, 40), value, np.uint8)).save(root / "tumor" / f"Y{i}.jpg", quality=95)
    return root


def test_external_slices_all_have_a_tumour(brightness_model, external_folder):
    block = shift.score_shift(brightness_model, external_dir=external_folder)["external_dev"]
    assert (block["n"], block["n_tumour"], block["n_tumour_free"]) == (3, 3, 0)
    assert block["sensitivity"] == pytest.approx(1 / 3) and block["specificity"] is None
    assert block["misses"] == 2 and block["misses_mean_confidence"] > 0.99
    assert "web-collected" in shift.card_record({"external_dev": block})["external_dev"].split


def test_sources_are_read_with_their_truth(brightness_model, synthetic_data, monkeypatch):
    monkeypatch.setattr(D, "MIN_TUMOR_PX", 50)  # the synthetic discs have 113 px
    report = shift.score_shift(brightness_model, synthetic_data["lgg"], synthetic_data["alzheimer"], synthetic_data["brain_tumor"])
    for name in ("lgg_flair", "lgg_t1_pre", "lgg_t1_post"):
        assert report[name]["patients"] == 4 and report[name]["n_tumour"] == 8 and report[name]["n_tumour_free"] == 12
    assert report["oasis"]["n"] == 24 and report["oasis"]["n_tumour"] == 0 and report["oasis"]["sensitivity"] is None
    assert report["folder"]["n_tumour"] == 18 and report["folder"]["n_tumour_free"] == 6
    pooled = shift.summary(report)
    assert pooled["n"] == 3 * 20 + 24 + 24
    assert 0.0 <= pooled["sensitivity"] <= 1.0 and 0.0 <= pooled["specificity"] <= 1.0


def test_slices_with_a_sliver_of_tumour_are_left_out(synthetic_data):
    slices, labels = shift.lgg_slices(synthetic_data["lgg"])
    assert len(slices) == 12 and not labels.any()  # 113 px < MIN_TUMOR_PX: neither tumour nor tumour-free


def test_a_model_without_notumor_is_refused(tiny_models):
    from mri_core.models import load

    with pytest.raises(ValueError, match="no 'notumor' class"):
        shift.score_shift(load("alzheimer_mri_sepnet", tiny_models))


def test_cli(tiny_models, synthetic_data, external_folder):
    env = {"MRI_MODELS_DIR": str(tiny_models), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-m", "mri_core.evaluate", "brain_tumor-shift", str(synthetic_data["brain_tumor"]),
                          "--lgg", str(synthetic_data["lgg"]), "--oasis", str(synthetic_data["alzheimer"]),
                          "--external", str(external_folder), "--json"],
                         capture_output=True, text=True, env=env, check=True, timeout=600)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["task"] == "brain_tumor-shift" and r["model"] == "brain_tumor_mri_sepnet"
    assert {"lgg_flair", "lgg_t1_pre", "lgg_t1_post", "oasis", "folder", "external_dev", "summary"} <= set(r)
    assert r["oasis"]["n"] == 24 and r["lgg_flair"]["n_tumour_free"] == 12
    assert r["external_dev"]["n_tumour"] == 3 and {"misses", "misses_abstained_or_warned", "misses_mean_confidence"} <= set(r["external_dev"])
    for key in ("sensitivity", "specificity", "abstained", "wrong_abstained_or_warned"):
        assert key in r["summary"]


def test_card_record_labels_every_block_with_its_split():
    block = {"n": 10, "n_tumour": 4, "n_tumour_free": 6, "sensitivity": 0.5, "specificity": 1.0, "abstained": 0.1,
             "wrong_calls": 2, "wrong_abstained_or_warned": 0.5}
    rec = shift.card_record({"lgg_flair": block, "oasis": {**block, "n_tumour": 0, "n_tumour_free": 10, "sensitivity": None}})
    assert "14 patients held out" in rec["lgg_flair"].split and "validation subjects" in rec["oasis"].split
    assert rec["summary"].n == 20
    assert rec["summary"].sensitivity == 0.5  # only the LGG block has tumour slices
    assert rec["summary"].specificity == 1.0 and rec["summary"].wrong_abstained_or_warned == 0.5
