"""mri_core.training.heads: the two-question head, the source head behind gradient reversal, and
the model the app gets (standard layers only)."""

import numpy as np
import pytest

from mri_core.architectures import create_model
from mri_core.training import heads as H

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]


@pytest.fixture(scope="module")
def base():
    return create_model("mri_sepnet", num_classes=4, input_size=(32, 32))


def test_gradient_reversal_is_identity_forward_and_flips_the_gradient():
    import tensorflow as tf

    layer = H.GradientReversal(0.7)
    x = tf.constant(np.linspace(-1, 1, 6, dtype=np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        total = tf.reduce_sum(y * 2.0)
    np.testing.assert_allclose(y.numpy(), x.numpy(), atol=1e-6)
    np.testing.assert_allclose(tape.gradient(total, x).numpy(), -1.4, atol=1e-6)


def test_two_questions_give_class_probabilities_in_the_tasks_order(base):
    model = H.two_questions(base, CLASSES)
    present, types = model.get_layer("tumour_present"), model.get_layer("tumour_type")
    present.set_weights([np.zeros_like(present.get_weights()[0]), np.array([np.log(0.8 / 0.2)], np.float32)])  # p(present) 0.8
    types.set_weights([np.zeros_like(types.get_weights()[0]), np.log(np.array([0.5, 0.3, 0.2], np.float32))])
    p = np.asarray(model(np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32")))
    np.testing.assert_allclose(p[0], [0.8 * 0.5, 0.8 * 0.3, 0.2, 0.8 * 0.2], atol=1e-5)
    assert model.output.shape[-1] == 4 and model.layers[-1].name == "probs"
    assert not model.get_layer("probs").trainable


def test_the_cross_entropy_of_two_questions_is_presence_plus_type():
    """-log p(type) = -log p(present) - log p(type | present); -log p(notumor) = -log(1 - p(present))."""
    p_present, p_type = 0.8, np.array([0.5, 0.3, 0.2])
    combined = np.array([p_present * p_type[0], p_present * p_type[1], 1 - p_present, p_present * p_type[2]])
    assert -np.log(combined[1]) == pytest.approx(-np.log(p_present) - np.log(p_type[1]))
    assert -np.log(combined[2]) == pytest.approx(-np.log(1 - p_present))


def test_the_source_head_trains_and_is_stripped_for_the_app(base, tmp_path):
    import keras

    model = H.training_network(base, CLASSES, True, n_sources=4, adversarial_weight=0.5)
    assert set(model.output) == {"probs", "source"}
    model.compile(optimizer="adam", loss={"probs": "categorical_crossentropy", "source": "categorical_crossentropy"})
    x = np.random.default_rng(1).random((8, 32, 32, 1)).astype("float32")
    y = {"probs": np.eye(4)[np.arange(8) % 4], "source": np.eye(4)[np.arange(8) % 2]}
    model.fit(x, y, epochs=1, verbose=0)
    app = H.app_model(model)
    assert not isinstance(app.output, dict)
    assert not any(isinstance(layer, H.GradientReversal) or layer.name.startswith("source") for layer in app.layers)
    app.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), np.asarray(model(x)["probs"]), atol=1e-5)
    assert H.app_model(app) is app
