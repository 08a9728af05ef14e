"""Every registered architecture builds flat, runs on random input, and names its Grad-CAM layer."""

import numpy as np
import pytest

from mri_core.architectures import create_model, get_architecture, list_architectures


@pytest.mark.parametrize("name", list_architectures())
def test_builds_and_runs(name):
    cfg = get_architecture(name)
    n = 4 if cfg.kind == "classifier" else 1
    model = create_model(name, num_classes=n, input_size=(64, 64))
    x = np.random.default_rng(0).random((2, 64, 64, cfg.channels)).astype("float32")
    y = np.asarray(model(x, training=False))
    if cfg.kind == "classifier":
        assert y.shape == (2, 4)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    else:
        assert y.shape == (2, 64, 64, 1)
        assert 0.0 <= y.min() and y.max() <= 1.0
    assert np.isfinite(y).all()
    # Flat: no layer is itself a Model, so every conv layer is reachable by name.
    assert not any(hasattr(layer, "layers") for layer in model.layers)
    if cfg.gradcam_layer:
        assert len(model.get_layer(cfg.gradcam_layer).output.shape) == 4


def test_unknown_name_lists_known():
    with pytest.raises(ValueError, match="known: "):
        get_architecture("resnet9000")


def test_saved_model_reloads_identically(tmp_path):
    import keras

    model = create_model("mri_sepnet", num_classes=4, input_size=(32, 32))
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    x = np.random.default_rng(1).random((1, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(model.predict_on_batch(x), again.predict_on_batch(x), atol=1e-6)


def test_imagenet_style_weights_load_from_a_user_file(tmp_path):
    """--imagenet-weights: a backbone weights file (here random, same layout) loads by layer name."""
    import keras

    backbone = keras.applications.MobileNetV3Small(input_shape=(64, 64, 3), include_top=False, weights=None,
                                                   include_preprocessing=True)
    path = tmp_path / "mobilenet_v3_small_notop.weights.h5"
    backbone.save_weights(path)
    model = create_model("mobilenetv3_small", num_classes=4, input_size=(64, 64), weights=str(path))
    ref = backbone.get_layer("conv").get_weights()[0]
    np.testing.assert_array_equal(model.get_layer("conv").get_weights()[0], ref)


def test_sepnet_description_gives_its_parameter_count():
    model = create_model("mri_sepnet", num_classes=4, input_size=(64, 64))
    assert model.count_params() == 188_932  # the bundled sepnet cards say the same
    assert f"{round(model.count_params() / 1000)} k parameters" in get_architecture("mri_sepnet").description
