"""mri_core.models: the registry of trained models, for the bundled ones and tiny ones."""

from pathlib import Path

import numpy as np
import pytest

from mri_core import models
from mri_core.tasks import TASKS


def test_list_and_default(tiny_models):
    assert models.list_models("lgg", tiny_models) == ["lgg_flair_unet_lite", "lgg_unet_lite"]
    assert models.default_model("lgg", tiny_models) == "lgg_unet_lite"
    assert models.default_model("brain_tumor", tiny_models) == "brain_tumor_mri_sepnet"


def test_unknown_model_names_known_ones(tiny_models):
    with pytest.raises(ValueError, match="known models: .*brain_tumor_mri_sepnet"):
        models.read_card("nope", tiny_models)


def test_no_model_for_task(tmp_path):
    with pytest.raises(ValueError, match="no trained model"):
        models.default_model("brain_tumor", tmp_path)


# The repository's own models/, fixed at import: other tests point the registry at tiny models.
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "models"
BUNDLED = models.list_models(root=BUNDLED_DIR)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_models_load_and_agree_with_their_card(name):
    m = models.load(name, BUNDLED_DIR)
    card = m.card
    assert card["task"] in TASKS
    assert m.class_names == list(TASKS[card["task"]].class_names)
    size = tuple(card["preprocessing"]["size"])
    assert tuple(m.keras_model.input_shape[1:3]) == size
    assert m.keras_model.input_shape[3] == card["preprocessing"]["channels"]
    assert models.file_mb(name, BUNDLED_DIR) < 30
    assert card["metrics"]["validation"]
    x = np.random.default_rng(0).random((1, *size, card["preprocessing"]["channels"])).astype("float32")
    assert np.isfinite(m.keras_model.predict_on_batch(x)).all()


def test_every_task_has_a_bundled_model():
    for task in TASKS:
        assert models.list_models(task, BUNDLED_DIR), f"no model in models/ for {task}"


def test_bundled_tumour_model_reads_the_bundled_samples():
    """The committed default model, on the validation images shipped in samples/."""
    from mri_core.scoring import classifier_predictions
    from mri_core.samples import sample_dir

    m = models.load(models.default_model("brain_tumor", BUNDLED_DIR), BUNDLED_DIR)
    labels, probs, paths, bad, _ = classifier_predictions(m, sample_dir("brain_tumor"))
    assert not bad and len(paths) == 12
    assert (probs.argmax(1) == labels).mean() >= 0.75


def test_a_grey_upload_gets_the_one_sequence_segmenter(tiny_models):
    name, why = models.segmenter_for(grey=True, root=tiny_models)
    assert name == "lgg_flair_unet_lite" and "FLAIR" in why
    name, why = models.segmenter_for(grey=False, root=tiny_models)
    assert name == "lgg_unet_lite" and "three channels" in why
