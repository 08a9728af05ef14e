"""scripts/: the device helpers (pack a data folder, score a card again on the original data)."""

import importlib.util
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from mri_core.io.folders import list_lgg
from mri_core.models import read_card

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _script(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_pack_keeps_the_layout_and_the_masks(synthetic_data, tmp_path):
    src = synthetic_data["lgg"]
    _script("pack_for_device").pack(src, tmp_path / "lgg", quality=80)
    original, packed = list_lgg(src), list_lgg(tmp_path / "lgg")
    assert [s.patient_id for s in packed] == [s.patient_id for s in original]
    for a, b in zip(original, packed):
        assert a.mask_path.read_bytes() == b.mask_path.read_bytes()  # masks byte for byte
        assert np.abs(np.asarray(Image.open(a.image_path), float) - np.asarray(Image.open(b.image_path), float)).mean() < 8


def test_rescore_moves_the_copy_figures_aside(tiny_models, synthetic_data, tmp_path):
    shutil.copytree(tiny_models / "lgg_unet_lite", tmp_path / "lgg_unet_lite")
    before = read_card("lgg_unet_lite", tmp_path)
    report = _script("rescore_card").rescore("lgg_unet_lite", tmp_path, synthetic_data["lgg"])
    card = read_card("lgg_unet_lite", tmp_path)
    assert card.validation.to_json() == json.loads(json.dumps(report))
    assert card.metrics.reports["validation_on_training_copy"] == before.validation
    assert report["n_patients"] == len(card.split.val_patients)
    assert card.segmentation.top_k in (4, 8, 16, 32, 64, 128)


def test_rescore_adds_intensity_normalization_to_an_older_card(tiny_models, synthetic_data, tmp_path):
    from mri_core.models import write_card

    shutil.copytree(tiny_models / "lgg_unet_lite", tmp_path / "lgg_unet_lite")
    older = read_card("lgg_unet_lite", tmp_path)
    older = replace(older, preprocessing=replace(older.preprocessing, intensity=None))
    write_card("lgg_unet_lite", older, tmp_path)
    _script("rescore_card").rescore("lgg_unet_lite", tmp_path, synthetic_data["lgg"], intensity_max_gain=4.0)
    card = read_card("lgg_unet_lite", tmp_path)
    spec = card.preprocessing.intensity
    assert spec.max_gain == 4.0 and "trained without it" in spec.note
    assert card.metrics.reports["validation_without_intensity"] == older.validation
    assert "validation_on_training_copy" not in card.metrics.reports


def test_scripts_run_as_modules_from_the_root():
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as a user types it, nothing on the path
    for args in (["scripts.rescore_card", "--help"], ["scripts.pack_for_device", "--help"], ["scripts.model_table"]):
        out = subprocess.run([sys.executable, "-m", *args], cwd=SCRIPTS.parent, env=env, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, (args, out.stderr[-2000:])
    for path in SCRIPTS.glob("*.py"):
        assert "sys.path" not in path.read_text(), path.name


def test_validation_folders_link_the_held_out_images_for_evaluate(synthetic_data, tmp_path):
    from mri_core import data as D
    from mri_core.io.folders import list_class_folder

    vf = _script("validation_folders")
    labels = list_class_folder(synthetic_data["brain_tumor"], ("glioma", "meningioma", "notumor", "pituitary")).labels
    val = D.stratified_split(labels, D.VAL_FRACTION, D.SPLIT_SEED)[1]
    n = vf.link_class_folder("brain_tumor", val, tmp_path / "bt", synthetic_data["brain_tumor"])
    linked = sorted(tmp_path.joinpath("bt").rglob("*.png")) or sorted(tmp_path.joinpath("bt").rglob("*.*"))
    assert n == len(val) == len(linked) and all(p.is_symlink() for p in linked)
    assert len(list_class_folder(tmp_path / "bt", ("glioma", "meningioma", "notumor", "pituitary")).paths) == n
    rows = vf.link_lgg(tmp_path / "lgg", synthetic_data["lgg"])
    held_out = list_lgg(tmp_path / "lgg")
    assert rows == len(held_out) > 0 and {s.patient_id for s in held_out} == set(D.lgg_validation_patients(synthetic_data["lgg"]))


def test_segmenter_shift_counts_wrong_held_back_and_flagged_calls(use_tiny_models, synthetic_data):
    import dataclasses

    from mri_core import models
    from scripts import segmenter_shift

    paths = [s.image_path for s in list_lgg(synthetic_data["lgg"])][:4]
    loaded = {n: models.load(n) for n in (models.segmenter_for(True)[0], models.segmenter_for(False)[0])}
    as_tumour = segmenter_shift.score_source(loaded, paths, tumour=True, flair_only=False)
    as_clear = segmenter_shift.score_source(loaded, paths, tumour=False, flair_only=False)
    assert as_tumour["n"] == as_clear["n"] == 4 and as_tumour["wrong"] + as_clear["wrong"] == 4
    assert as_tumour["abstained"] == 0.0  # the tiny models' thresholds are widened (conftest.make_lenient)
    strict = {n: dataclasses.replace(m, ood=dataclasses.replace(m.ood, threshold=-1.0)) for n, m in loaded.items()}
    held = segmenter_shift.score_source(strict, paths, tumour=True, flair_only=True)
    assert held["abstained"] == 1.0 and held["wrong_abstained"] == held["wrong"] and held["wrong_not_flagged"] == 0
    assert held["models"] == [models.segmenter_for(True)[0]]  # the FLAIR channel alone is a grey upload


def test_training_chain_says_which_models_can_be_trained_again():
    """issue 27: the README said each card's command reproduces its model; for most it is one step of a chain."""
    from scripts.training_chain import chain

    bundled = Path(__file__).resolve().parent.parent / "models"  # not a test's own models folder
    tumour = chain("brain_tumor_mobilenetv3_small", bundled)
    assert len(tumour) > 1 and all(s.rerunnable for s in tumour) and tumour[0].starts_from is None
    assert tumour[-1].starts_from.startswith(tumour[-2].writes)  # each step starts where the one before ended
    sepnet = chain("brain_tumor_mri_sepnet", bundled)
    assert not sepnet[-1].rerunnable and "best.keras" in sepnet[-1].starts_from  # a checkpoint that was not kept
    assert all(s.wall_time_bound for s in sepnet[:-1] if "--max-minutes" in s.command)
