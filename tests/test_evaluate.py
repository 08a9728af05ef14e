"""mri_core.evaluate: the JSON the hidden test sets are scored with, from the real CLI."""

import json
import subprocess
import sys

import numpy as np

from mri_core import evaluate, inference
from mri_core.io import read_image
from mri_core.models import load

CLASSIFIER_KEYS = {"task", "model", "n", "accuracy", "balanced_accuracy", "macro_f1", "auc_macro", "ece", "per_class",
                   "confusion", "class_names"}
LGG_KEYS = {"n_patients", "n_slices", "dice_patient_mean", "dice_tumor_slices", "iou", "detection_auc",
            "detection_accuracy", "false_positive_slices"}


def run_cli(args, models_dir):
    env = {"MRI_MODELS_DIR": str(models_dir), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-m", "mri_core.evaluate", *args, "--json"], capture_output=True, text=True,
                         env=env, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_classifier_cli(tiny_models, synthetic_data):
    r = run_cli(["brain_tumor", str(synthetic_data["brain_tumor"])], tiny_models)
    assert CLASSIFIER_KEYS <= set(r)
    assert r["n"] == 24 and r["model"] == "brain_tumor_mri_sepnet"
    assert np.asarray(r["confusion"]).sum() == 24
    assert set(r["per_class"]["glioma"]) == {"precision", "recall", "f1", "support"}


def test_lgg_cli(tiny_models, synthetic_data):
    r = run_cli(["lgg", str(synthetic_data["lgg"]), "--model", "lgg_unet_lite"], tiny_models)
    assert LGG_KEYS <= set(r)
    assert r["n_patients"] == 4 and r["n_slices"] == 20


def test_same_probabilities_as_the_app(tiny_models, synthetic_data):
    m = load("alzheimer_mri_sepnet", tiny_models)
    labels, probs, paths, bad, _ = evaluate.classifier_predictions(m, synthetic_data["alzheimer"])
    assert not bad
    app = inference.classify(m, [read_image(p.read_bytes(), p.name).slices[0] for p in paths[:5]])
    np.testing.assert_allclose(probs[:5], np.stack([a.probs for a in app]), atol=1e-6)


def test_unreadable_files_are_counted(tiny_models, synthetic_data, tmp_path):
    import shutil

    shutil.copytree(synthetic_data["brain_tumor"], tmp_path / "bt")
    (tmp_path / "bt" / "glioma" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    r = evaluate.score_classifier(load("brain_tumor_mri_sepnet", tiny_models), tmp_path / "bt")
    assert r["n"] == 24 and r["n_unreadable"] == 1


def test_evaluate_abstains_on_a_ct_file_as_the_app_does(use_tiny_models, tmp_path):
    """Each file is judged with its own modality: the CT DICOM is abstained on, the MR ones are not
    (the tiny models' feature check is widened, so the modality alone decides here)."""
    from factories import dicom_bytes, phantom

    from mri_core.tasks import TASKS

    for i, name in enumerate(TASKS["brain_tumor"].class_names):
        (tmp_path / name).mkdir()
        pixels = (phantom(64, 64, seed=i) * 1000).astype(np.uint16)
        (tmp_path / name / "mr.dcm").write_bytes(dicom_bytes(pixels, modality="MR"))
    (tmp_path / "glioma" / "ct.dcm").write_bytes(dicom_bytes((phantom(64, 64, seed=9) * 1000).astype(np.uint16), modality="CT"))
    labels, probs, paths, bad, reliable = evaluate.classifier_predictions(load("brain_tumor_mri_sepnet"), tmp_path)
    assert [p.name for p, r in zip(paths, reliable) if not r] == ["ct.dcm"]
    assert evaluate.score_classifier(load("brain_tumor_mri_sepnet"), tmp_path)["abstained"] == 0.2
