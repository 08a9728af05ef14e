"""What the network looked at: Grad-CAM and feature maps of any convolutional layer.

Compute and draw apart (keras-io's habit): ``gradcam`` returns a heatmap in [0, 1] and
``overlay`` blends it. Both build their own small functional model over the shared one and
never change it (the shared model lives in ``st.cache_resource`` and serves every user).
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from mri_core.models import LoadedModel
from mri_core.preprocess import resize, to_rgb, to_uint8


def spatial_layers(keras_model) -> list[str]:
    """Names of layers with a 4-D (batch, H, W, C) output, input layer excluded, in graph order."""
    names = []
    for layer in keras_model.layers:
        if layer.__class__.__name__ == "InputLayer":
            continue
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if len(shape) == 4:
            names.append(layer.name)
    return names


def conv_layers(keras_model) -> list[str]:
    """Names of the convolution layers (Conv2D, SeparableConv2D, DepthwiseConv2D, ...)."""
    return [l.name for l in keras_model.layers if "Conv" in l.__class__.__name__ and len(l.output.shape) == 4]


def default_gradcam_layer(keras_model) -> str:
    """The last layer with a spatial output: the usual Grad-CAM target."""
    names = spatial_layers(keras_model)
    if not names:
        raise ValueError("this model has no layer with a spatial output")
    return names[-1]


_lock = threading.Lock()


@lru_cache(maxsize=64)
def _probe_model(keras_model, layer_name: str):
    """A model giving (layer activations, model output); cached, built once per layer."""
    import keras

    return keras.Model(keras_model.inputs, [keras_model.get_layer(layer_name).output, keras_model.outputs[0]])


@lru_cache(maxsize=64)
def _cam_function(keras_model, layer_name: str, segmenter: bool):
    """A compiled Grad-CAM step: eager GradientTape costs ~20 forward passes, traced costs ~3."""
    import tensorflow as tf

    probe = _probe_model(keras_model, layer_name)

    @tf.function(reduce_retracing=True)
    def cam(x, class_index):
        with tf.GradientTape() as tape:
            act, out = probe(x, training=False)
            if segmenter:
                target = tf.reduce_sum(out)
            else:
                # class_index < 0 means "the top class"
                idx = tf.where(class_index < 0, tf.argmax(out[0], output_type=tf.int32), class_index)
                target = out[:, idx]
        grads = tape.gradient(target, act)
        weights = tf.reduce_mean(grads, axis=(0, 1, 2))
        return tf.nn.relu(tf.reduce_sum(act[0] * weights, axis=-1))

    return cam


def _probe(loaded: LoadedModel, layer_name: str):
    with _lock:  # building a Keras model is not thread-safe; using it is
        return _probe_model(loaded.keras_model, layer_name)


def gradcam(loaded: LoadedModel, x: np.ndarray, class_index: int | None = None, layer_name: str | None = None) -> np.ndarray:
    """Grad-CAM heatmap in [0, 1] at the input's size for one prepared input (H, W, C).

    For a classifier the target is the class probability (the top class unless given);
    for a segmenter it is the sum of the predicted tumour probability over the image.
    """
    import tensorflow as tf

    layer_name = layer_name or loaded.card.gradcam_layer or default_gradcam_layer(loaded.keras_model)
    if layer_name not in spatial_layers(loaded.keras_model):
        raise ValueError(f"layer {layer_name!r} has no spatial output")
    with _lock:
        fn = _cam_function(loaded.keras_model, layer_name, loaded.kind == "segmenter")
    idx = tf.constant(-1 if class_index is None else int(class_index), tf.int32)
    cam = fn(tf.convert_to_tensor(x[None].astype(np.float32)), idx).numpy()
    if cam.max() > 0:
        cam = cam / cam.max()
    return np.clip(resize(cam.astype(np.float32), x.shape[:2]), 0.0, 1.0)


def feature_maps(loaded: LoadedModel, x: np.ndarray, layer_name: str) -> np.ndarray:
    """Activations (H', W', C') of one layer for one prepared input."""
    probe = _probe(loaded, layer_name)
    act, _ = probe(x[None].astype(np.float32), training=False)
    return np.asarray(act)[0]


def colormap(heat: np.ndarray) -> np.ndarray:
    """A [0, 1] map to RGB uint8 with the JET colormap."""
    import cv2

    return cv2.applyColorMap(to_uint8(heat), cv2.COLORMAP_JET)[..., ::-1]


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Blend a heatmap over an image (gray or RGB, float [0, 1]); returns RGB uint8."""
    base = to_rgb(to_uint8(image if image.ndim == 2 else image[..., :3] if image.shape[-1] >= 3 else image[..., 0]))
    heat = resize(heat.astype(np.float32), base.shape[:2])
    return (base * (1 - alpha) + colormap(heat) * alpha).astype(np.uint8)


def feature_grid(maps: np.ndarray, max_channels: int = 64) -> np.ndarray:
    """Tile up to ``max_channels`` feature maps, each scaled to [0, 1], into one gray image."""
    c = min(maps.shape[-1], max_channels)
    cols = int(np.ceil(np.sqrt(c)))
    rows = int(np.ceil(c / cols))
    h, w = maps.shape[:2]
    grid = np.zeros((rows * (h + 1) - 1, cols * (w + 1) - 1), np.float32)
    for i in range(c):
        m = maps[..., i]
        lo, hi = float(m.min()), float(m.max())
        m = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
        r, q = divmod(i, cols)
        grid[r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = m
    return grid
