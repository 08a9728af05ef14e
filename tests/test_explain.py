"""mri_core.explain: Grad-CAM and feature maps on every layer, without touching the shared model."""

import numpy as np
import pytest

from factories import phantom
from mri_core import explain
from mri_core.models import load
from mri_core.preprocess import prepare


@pytest.fixture(scope="module", params=["brain_tumor_mri_sepnet", "lgg_unet_lite"])
def model(request, tiny_models):
    return load(request.param, tiny_models)


def test_gradcam_range_and_size(model):
    img = phantom(64, 64) if model.card.preprocessing.channels == 1 else np.dstack([phantom(64, 64)] * 3)
    x = prepare(img, model.preprocessing)
    heat = explain.gradcam(model, x)
    assert heat.shape == x.shape[:2] and 0.0 <= heat.min() and heat.max() <= 1.0


def test_every_spatial_layer_gives_maps_and_cam(model):
    x = prepare(np.dstack([phantom(64, 64)] * 3), model.preprocessing)
    n_layers = len(model.keras_model.layers)
    convs = explain.conv_layers(model.keras_model)
    for name in convs:
        maps = explain.feature_maps(model, x, name)
        assert maps.ndim == 3 and np.isfinite(maps).all()
    for name in (convs[0], convs[len(convs) // 2], convs[-1]):  # each layer traces its own function
        heat = explain.gradcam(model, x, layer_name=name)
        assert heat.shape == x.shape[:2]
    assert len(model.keras_model.layers) == n_layers  # the shared model is unchanged
    assert model.keras_model.get_layer("probs" if model.kind == "classifier" else "mask").activation.__name__ in ("softmax", "sigmoid")


def test_default_layer_and_drawing(model):
    assert explain.default_gradcam_layer(model.keras_model) in explain.spatial_layers(model.keras_model)
    grid = explain.feature_grid(np.random.default_rng(0).random((8, 8, 10)).astype(np.float32))
    assert grid.shape == (3 * 9 - 1, 4 * 9 - 1)  # 10 channels: 4 columns, 3 rows
    ov = explain.overlay(phantom(), np.ones((10, 10), np.float32))
    assert ov.shape == (96, 96, 3) and ov.dtype == np.uint8
