"""Model builders, registered by name (the timm habit): ``create_model(name, ...)`` is the only way in.

Each builder returns one flat functional ``keras.Model`` (Keras Applications get
``input_tensor=`` rather than being nested) so Grad-CAM and the activation viewer can reach
every convolutional layer by name. Each registration carries the architecture's facts:
its kind, default input, channels and the layer Grad-CAM should look at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
from keras import layers

# Batch-norm moving statistics lag the weights by ~1/(1-momentum) steps; with ~150 steps an
# epoch the Keras default (0.99) left inference-mode accuracy near chance for several epochs
# while training-mode accuracy was 90 %. 0.9 tracks within an epoch.
BN_MOMENTUM = 0.9


def _bn(name):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)


@dataclass(frozen=True)
class ArchConfig:
    name: str
    kind: str  # "classifier" or "segmenter"
    input_size: tuple[int, int]
    channels: int
    gradcam_layer: str | None  # None: the last layer with a spatial output
    description: str
    builder: Callable[..., keras.Model]


_REGISTRY: dict[str, ArchConfig] = {}


def register_architecture(kind: str, input_size: tuple[int, int], channels: int, gradcam_layer: str | None, description: str):
    def wrap(fn):
        _REGISTRY[fn.__name__] = ArchConfig(fn.__name__, kind, tuple(input_size), channels, gradcam_layer, description, fn)
        return fn

    return wrap


def list_architectures(kind: str | None = None) -> list[str]:
    return sorted(n for n, c in _REGISTRY.items() if kind is None or c.kind == kind)


def get_architecture(name: str) -> ArchConfig:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(list_architectures())}") from None


def create_model(
    name: str,
    num_classes: int = 1,
    input_size: tuple[int, int] | None = None,
    channels: int | None = None,
    **kwargs,
) -> keras.Model:
    cfg = get_architecture(name)
    size = tuple(input_size or cfg.input_size)
    ch = channels or cfg.channels
    return cfg.builder(input_shape=(size[0], size[1], ch), num_classes=num_classes, **kwargs)


# --------------------------------------------------------------------------- classifiers


def _sep_block(x, filters: int, name: str):
    """Two depthwise-separable 3x3 convs with a 1x1 residual: cheap on a CPU, deep enough."""
    shortcut = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_proj")(x)
    shortcut = _bn(f"{name}_proj_bn")(shortcut)
    x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    x = _bn(f"{name}_bn1")(x)
    x = layers.ReLU(name=f"{name}_relu1")(x)
    x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(x)
    x = _bn(f"{name}_bn2")(x)
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.ReLU(name=f"{name}_out")(x)


@register_architecture(
    "classifier",
    input_size=(128, 128),
    channels=1,
    gradcam_layer="stage4_out",
    description="Compact CPU CNN: strided stem, four residual depthwise-separable stages (189 k parameters for 4 classes at the default widths).",
)
def mri_sepnet(input_shape, num_classes, widths=(32, 64, 128, 256), dropout=0.3):
    inputs = keras.Input(shape=input_shape, name="image")
    # Downsample at once: full-resolution convolutions dominate CPU time.
    x = layers.Conv2D(widths[0], 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = _bn("stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for i, w in enumerate(widths, start=1):
        x = _sep_block(x, w, f"stage{i}")
        if i < len(widths):
            x = layers.MaxPooling2D(2, name=f"stage{i}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="mri_sepnet")


@register_architecture(
    "classifier",
    input_size=(128, 128),
    channels=3,
    gradcam_layer=None,  # the last 4-D layer, found when the model is built
    description="Keras Applications MobileNetV3Small (weights=None or ImageNet from a file), flat graph.",
)
def mobilenetv3_small(input_shape, num_classes, dropout=0.3, weights=None):
    inputs = keras.Input(shape=input_shape, name="image")
    # Backbone expects [0, 255] when include_preprocessing=True; ours get [0, 1], so scale.
    x = layers.Rescaling(255.0, name="to_255")(inputs)
    backbone = keras.applications.MobileNetV3Small(
        input_tensor=x,
        include_top=False,
        weights=weights,
        include_preprocessing=True,
        minimalistic=False,
    )
    for layer in backbone.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM  # Applications use 0.999: far too slow from scratch
    x = layers.GlobalAveragePooling2D(name="gap")(backbone.output)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="mobilenetv3_small")


# --------------------------------------------------------------------------- segmenters


def _conv_bn(x, filters, name, strides=1):
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = _bn(f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _res_block(x, filters, name, strides=1):
    """ResUNet residual unit (Zhang et al. 2018): BN-ReLU-conv twice plus a projected shortcut."""
    shortcut = layers.Conv2D(filters, 1, strides=strides, padding="same", use_bias=False, name=f"{name}_skip")(x)
    shortcut = _bn(f"{name}_skip_bn")(shortcut)
    y = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = _bn(f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = _bn(f"{name}_bn2")(y)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


@register_architecture(
    "segmenter",
    input_size=(128, 128),
    channels=3,
    gradcam_layer="bottleneck_out",
    description="ResUNet (residual encoder/decoder, as in the seeds), 4 levels, sigmoid mask.",
)
def resunet(input_shape, num_classes=1, widths=(16, 32, 64, 128)):
    inputs = keras.Input(shape=input_shape, name="image")
    skips = []
    x = _res_block(inputs, widths[0], "enc1")
    skips.append(x)
    for i, w in enumerate(widths[1:-1], start=2):
        x = _res_block(x, w, f"enc{i}", strides=2)
        skips.append(x)
    x = _res_block(x, widths[-1], "bottleneck", strides=2)
    for i, (w, skip) in enumerate(zip(reversed(widths[:-1]), reversed(skips)), start=1):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"dec{i}_up")(x)
        x = layers.Concatenate(name=f"dec{i}_cat")([x, skip])
        x = _res_block(x, w, f"dec{i}")
    outputs = layers.Conv2D(num_classes, 1, activation="sigmoid", name="mask")(x)
    return keras.Model(inputs, outputs, name="resunet")


def _unet_levels(x, widths):
    """U-Net encoder (two conv-BN-ReLU then 2x2 max-pool per level), bottleneck, and decoder
    (bilinear upsampling, skip concatenation, two conv-BN-ReLU), back at the input's resolution."""
    skips = []
    for i, w in enumerate(widths[:-1], start=1):
        x = _conv_bn(x, w, f"enc{i}_a")
        x = _conv_bn(x, w, f"enc{i}_b")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
    x = _conv_bn(x, widths[-1], "bottleneck_a")
    x = _conv_bn(x, widths[-1], "bottleneck_b")
    for i, (w, skip) in enumerate(zip(reversed(widths[:-1]), reversed(skips)), start=1):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"dec{i}_up")(x)
        x = layers.Concatenate(name=f"dec{i}_cat")([x, skip])
        x = _conv_bn(x, w, f"dec{i}_a")
        x = _conv_bn(x, w, f"dec{i}_b")
    return x


@register_architecture(
    "segmenter",
    input_size=(128, 128),
    channels=3,
    gradcam_layer="bottleneck_b_relu",
    description="U-Net with a strided first layer: decodes at half resolution, upsampled at the end (CPU-sized).",
)
def unet_lite(input_shape, num_classes=1, widths=(24, 48, 96, 192)):
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn(inputs, widths[0], "stem", strides=2)  # half resolution from the start
    x = _unet_levels(x, widths)
    x = layers.UpSampling2D(2, interpolation="bilinear", name="head_up")(x)
    x = layers.Concatenate(name="head_cat")([x, inputs])
    x = _conv_bn(x, widths[0] // 2, "head")
    outputs = layers.Conv2D(num_classes, 1, activation="sigmoid", name="mask")(x)
    return keras.Model(inputs, outputs, name="unet_lite")


@register_architecture(
    "segmenter",
    input_size=(256, 256),
    channels=3,
    gradcam_layer="bottleneck_b_relu",
    description="U-Net (Ronneberger et al. 2015) at full resolution, 5 levels of two 3x3 convs, narrow widths for the CPU.",
)
def unet(input_shape, num_classes=1, widths=(16, 32, 64, 128, 256)):
    inputs = keras.Input(shape=input_shape, name="image")
    x = _unet_levels(inputs, widths)
    outputs = layers.Conv2D(num_classes, 1, activation="sigmoid", name="mask")(x)
    return keras.Model(inputs, outputs, name="unet")
