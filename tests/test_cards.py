"""mri_core.cards: typed model cards that read every card, old or new, and write it back unchanged."""

import dataclasses
import json
import os
from pathlib import Path

import pytest

from mri_core import models
from mri_core.cards import Card, ClassifierReport, Preprocessing, SegmentationRule, SegmenterReport

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "models"
COMMITTED = sorted(BUNDLED_DIR.glob("*/card.json"))

MINIMAL = {"task": "lgg", "kind": "segmenter", "class_names": ["no tumor", "tumor"],
           "preprocessing": {"crop": False, "size": [32, 32], "channels": 3, "scale": "[0, 1]"}}


def round_trips(text: str) -> Card:
    d = json.loads(text)
    card = Card.from_json(d)
    assert card.to_json() == d
    assert json.dumps(card.to_json(), indent=2) + "\n" == text  # the same keys in the same order
    return card


@pytest.mark.parametrize("path", COMMITTED, ids=[p.parent.name for p in COMMITTED])
def test_every_committed_card_round_trips(path):
    card = round_trips(path.read_text())
    assert card.name == path.parent.name
    assert isinstance(card.validation, SegmenterReport if card.is_segmenter else ClassifierReport)
    assert card.training.epochs_run == card.history.epochs
    assert not card.extra and not card.metrics.extra  # every top-level key and metrics block is typed


def test_committed_cards_read_typed():
    cards = {p.parent.name: Card.from_json(json.loads(p.read_text())) for p in COMMITTED}
    flair, tumour = cards["lgg_flair_unet_lite"], cards["brain_tumor_mobilenetv3_small"]
    assert flair.is_single_sequence and not cards["lgg_unet_lite"].is_single_sequence
    assert flair.preprocessing.sequence == "flair" and flair.preprocessing.input_shape == (192, 192, 1)
    assert flair.segmentation_rule.top_k == 128 and flair.temperature == 1.0
    assert tumour.temperature == tumour.calibration.temperature != 1.0
    assert tumour.ood.layers == ("re_lu_2", "gap") and tumour.calls["glioma"].better_than_chance
    assert tumour.metrics.cross_source_summary.n > 0 and "summary" not in tumour.metrics.other_sources
    assert "validation_with_other_sources" in tumour.metrics.reports
    assert tumour.validation.balanced_accuracy > 0.9 and tumour.split.n_val == tumour.validation.n


def test_cards_written_by_training_round_trip(tiny_models):
    reg = models.Registry(tiny_models)
    names = reg.list()
    assert len(names) == 4
    for name in names:
        card = round_trips((tiny_models / name / models.CARD_FILE).read_text())
        assert card == reg.read(name)


def test_a_minimal_card_reads_with_defaults_and_writes_back_as_it_was():
    card = Card.from_json(MINIMAL)
    assert card.name is None and card.class_names == ("no tumor", "tumor")
    assert card.calibration is card.metrics is card.reliability is card.segmentation is None
    assert card.temperature == 1.0 and card.validation is None and card.ood is None
    assert card.segmentation_rule == SegmentationRule(threshold=0.5, top_k=16)
    assert card.to_json() == MINIMAL  # no defaults added


def test_a_card_without_crop_or_default_gains_neither():
    d = {**MINIMAL, "preprocessing": {"size": [32, 32], "channels": 1}}
    assert Card.from_json(d).to_json() == d


@pytest.mark.parametrize("key", ["task", "kind", "class_names", "preprocessing"])
def test_a_card_without_what_every_card_needs_is_refused(key):
    with pytest.raises(ValueError, match=key):
        Card.from_json({k: v for k, v in MINIMAL.items() if k != key})


def test_unknown_keys_are_kept_where_they_were():
    d = json.loads(json.dumps(MINIMAL))
    d["notes"] = ["a note"]
    d["preprocessing"]["window"] = [0.1, 0.9]
    d["metrics"] = {"validation": {"n_patients": 1, "dice_patient_mean": 0.5, "new_figure": 3},
                    "validation_other_way": {"n": 4, "accuracy": 0.5}, "something": {"x": 1}}
    card = Card.from_json(d)
    assert card.extra == {"notes": ["a note"]} and card.preprocessing.extra == {"window": [0.1, 0.9]}
    assert isinstance(card.validation, SegmenterReport) and card.validation.extra == {"new_figure": 3}
    assert isinstance(card.metrics.reports["validation_other_way"], ClassifierReport)
    assert card.metrics.extra == {"something": {"x": 1}}
    assert card.to_json() == d and list(card.to_json()) == list(d)


def test_a_changed_card_writes_the_change_and_nothing_else():
    card = Card.from_json({**MINIMAL, "calibration": {"temperature": 2.0}, "default": True})
    assert card.temperature == 2.0
    out = dataclasses.replace(card, calibration=None, default=False).to_json()
    assert "calibration" not in out and out["default"] is False
    pre = dataclasses.replace(card.preprocessing, sequence="flair")
    assert dataclasses.replace(card, preprocessing=pre).to_json()["preprocessing"]["sequence"] == "flair"


def test_a_card_built_in_code_writes_what_training_always_writes():
    card = Card(task="lgg", kind="segmenter", class_names=("no tumor", "tumor"),
                preprocessing=Preprocessing(size=(32, 32), channels=3), segmentation=SegmentationRule(top_k=4))
    assert card.to_json() == {**MINIMAL, "segmentation": {"threshold": 0.5, "top_k": 4}, "default": False}


def test_to_json_gives_a_copy():
    card = Card.from_json(json.loads(COMMITTED[0].read_text()))
    out = card.to_json()
    out["metrics"]["validation"]["confusion"][0][0] = -1
    out["class_names"].append("x")
    assert card.to_json()["metrics"]["validation"]["confusion"][0][0] != -1 and "x" not in card.class_names


def test_registry_caches_cards_and_reads_a_rewritten_one(tmp_path):
    reg = models.Registry(tmp_path)
    reg.write("m", Card.from_json(MINIMAL))
    assert reg.read("m") is reg.read("m")
    reg.write("m", {**MINIMAL, "default": True})
    assert reg.read("m").default
    path = tmp_path / "m" / models.CARD_FILE  # rewritten by another process, same size
    path.write_text(path.read_text().replace("true", "1   "))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert reg.read("m").default == 1


def test_read_card_is_typed_and_write_card_refuses_a_card_that_does_not_parse(tmp_path):
    models.write_card("m", MINIMAL, tmp_path)
    card = models.read_card("m", tmp_path)
    assert card.preprocessing.channels == 3 and card.to_json() == MINIMAL
    with pytest.raises(ValueError, match="class_names"):
        models.write_card("m", {k: v for k, v in MINIMAL.items() if k != "class_names"}, tmp_path)
    assert models.read_card("m", tmp_path).to_json() == MINIMAL


def test_loaded_model_reads_its_typed_card(intensity_segmenter):
    loaded = intensity_segmenter
    assert loaded.card.segmentation_rule.top_k == 4 and loaded.kind == "segmenter" and loaded.temperature == 1.0
    pre = loaded.preprocessing  # the dict preprocess.prepare takes, a copy the caller may change
    assert pre == MINIMAL["preprocessing"]
    pre["channels"] = 1
    assert loaded.preprocessing["channels"] == 3
    with pytest.raises(TypeError, match="Card"):
        models.LoadedModel("m", MINIMAL, loaded.keras_model, loaded.path)
