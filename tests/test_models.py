"""mri_core.models: the registry of trained models, for the bundled ones and tiny ones."""

from pathlib import Path

import numpy as np
import pytest

from mri_core import models
from mri_core.tasks import TASKS


@pytest.fixture
def tiny(tiny_models) -> models.Registry:
    return models.Registry(tiny_models)


def test_list_and_default(tiny):
    assert tiny.list("lgg") == ["lgg_flair_unet_lite", "lgg_unet_lite"]
    assert tiny.default("lgg") == "lgg_unet_lite"
    assert tiny.default("brain_tumor") == "brain_tumor_mri_sepnet"


def test_unknown_model_names_known_ones(tiny):
    with pytest.raises(ValueError, match="known models: .*brain_tumor_mri_sepnet"):
        tiny.read("nope")


def test_no_model_for_task(tmp_path):
    with pytest.raises(ValueError, match="no trained model"):
        models.Registry(tmp_path).default("brain_tumor")


def test_module_functions_are_the_registry_on_a_folder(tiny, tiny_models):
    assert models.list_models("lgg", tiny_models) == tiny.list("lgg")
    assert models.default_model("lgg", tiny_models) == tiny.default("lgg")
    assert models.read_card("lgg_unet_lite", tiny_models) == tiny.read("lgg_unet_lite")
    assert models.registry(tiny_models) is models.registry(tiny_models)


def test_the_default_registry_follows_the_environment(tiny_models, monkeypatch):
    monkeypatch.delenv(models.ROOT_ENV, raising=False)
    assert models.default_root() == models.PROJECT_MODELS
    monkeypatch.setenv(models.ROOT_ENV, str(tiny_models))
    assert models.registry().root == tiny_models and models.default_model("lgg") == "lgg_unet_lite"


# The repository's own models/, fixed at import: other tests point the registry at tiny models.
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "models"
BUNDLED = models.Registry(BUNDLED_DIR)


@pytest.mark.parametrize("name", BUNDLED.list())
def test_bundled_models_load_and_agree_with_their_card(name):
    m = BUNDLED.load(name)
    card = m.card
    assert card.task in TASKS and card is BUNDLED.read(name)
    assert card.class_names == TASKS[card.task].class_names and m.class_names == list(card.class_names)
    assert tuple(m.keras_model.input_shape[1:]) == card.preprocessing.input_shape
    assert BUNDLED.file_mb(name) < 30
    assert card.validation
    x = np.random.default_rng(0).random((1, *card.preprocessing.input_shape)).astype("float32")
    assert np.isfinite(m.keras_model.predict_on_batch(x)).all()


def test_every_task_has_a_bundled_model():
    for task in TASKS:
        assert BUNDLED.list(task), f"no model in models/ for {task}"


def test_bundled_tumour_model_reads_the_bundled_samples():
    """The committed default model, on the validation images shipped in samples/."""
    from mri_core.scoring import classifier_predictions
    from mri_core.samples import sample_dir

    m = BUNDLED.load(BUNDLED.default("brain_tumor"))
    labels, probs, paths, bad, _ = classifier_predictions(m, sample_dir("brain_tumor"))
    assert not bad and len(paths) == 12
    assert (probs.argmax(1) == labels).mean() >= 0.75


def test_a_grey_upload_gets_the_one_sequence_segmenter(tiny):
    name, why = tiny.segmenter_for(grey=True)
    assert name == "lgg_flair_unet_lite" and "FLAIR" in why
    name, why = tiny.segmenter_for(grey=False)
    assert name == "lgg_unet_lite" and "three channels" in why
