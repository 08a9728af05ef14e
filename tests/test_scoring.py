"""mri_core.scoring: a folder scored the way the app predicts (the figures ``evaluate`` prints)."""

import numpy as np
import pytest

from mri_core import inference, scoring
from mri_core.io import read_image
from mri_core.models import load


def test_same_probabilities_as_the_app(tiny_models, synthetic_data):
    m = load("alzheimer_mri_sepnet", tiny_models)
    labels, probs, paths, bad, _ = scoring.classifier_predictions(m, synthetic_data["alzheimer"])
    assert not bad
    app = inference.classify(m, [read_image(p.read_bytes(), p.name).slices[0] for p in paths[:5]])
    np.testing.assert_allclose(probs[:5], np.stack([a.probs for a in app]), atol=1e-6)


def test_unreadable_files_are_counted(tiny_models, synthetic_data, tmp_path):
    import shutil

    shutil.copytree(synthetic_data["brain_tumor"], tmp_path / "bt")
    (tmp_path / "bt" / "glioma" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    r = scoring.score_classifier(load("brain_tumor_mri_sepnet", tiny_models), tmp_path / "bt")
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
    labels, probs, paths, bad, reliable = scoring.classifier_predictions(load("brain_tumor_mri_sepnet"), tmp_path)
    assert [p.name for p, r in zip(paths, reliable) if not r] == ["ct.dcm"]
    assert scoring.score_classifier(load("brain_tumor_mri_sepnet"), tmp_path)["abstained"] == 0.2


def test_score_lgg_reports_per_patient_dice_and_detection(tiny_models, synthetic_data):
    from mri_core.io.folders import list_lgg

    r = scoring.score_lgg(load("lgg_unet_lite", tiny_models), list_lgg(synthetic_data["lgg"]))
    assert r["n_patients"] == len(r["dice_per_patient"]) == 4 and r["n_slices"] == 20
    assert r["dice_patient_mean"] == pytest.approx(np.mean(list(r["dice_per_patient"].values())))


def test_evaluate_refuses_a_model_of_another_task(use_tiny_models, synthetic_data):
    with pytest.raises(ValueError, match="is for task brain_tumor, not alzheimer"):
        scoring.evaluate("alzheimer", synthetic_data["alzheimer"], "brain_tumor_mri_sepnet")
