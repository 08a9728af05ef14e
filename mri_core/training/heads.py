"""Heads that change what a classifier learns, not how the app runs it.

- ``two_questions``: "is there a tumour?" (one sigmoid) and "which type?" (a softmax over the
  tumour classes), combined into the usual class probabilities: p(notumor) = 1 - p(present),
  p(type) = p(present) x p(type | present). Cross-entropy on the combined output is exactly the
  presence loss plus the type loss on tumour images only, so the type is asked only when a tumour
  is there. The app still gets one softmax-like output named ``probs``.
- ``with_source_head``: a source classifier behind a gradient reversal layer (Ganin & Lempitsky
  2015), trained only: the head learns to tell the source, the reversed gradient teaches the
  backbone to hide it. ``app_model`` strips it before the model is saved, so the saved model holds
  standard layers only.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

SOURCE_OUTPUT = "source"
PROBS = "probs"


@keras.saving.register_keras_serializable(package="mri_core")
class GradientReversal(layers.Layer):
    """Identity forward; the gradient times ``-weight`` backward."""

    def __init__(self, weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.weight = float(weight)

    def call(self, x):
        w = self.weight
        # x - w' * (x - stop(x)) with w' = 1 + w: forward x, backward (1 - (1 + w)) = -w.
        return keras.ops.stop_gradient(x) * (1.0 + w) - x * w

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


def _features(model: keras.Model, feature_layer: str):
    return model.get_layer(feature_layer).output


def two_questions(model: keras.Model, class_names, no_tumour: str = "notumor", feature_layer: str = "dropout") -> keras.Model:
    """``model`` (a classifier whose ``feature_layer`` feeds its ``probs``) with the two-question head
    in place of its softmax; the output keeps the task's class order and the name ``probs``."""
    names = list(class_names)
    k = names.index(no_tumour)
    feats = _features(model, feature_layer)
    present = layers.Dense(1, activation="sigmoid", name="tumour_present")(feats)
    types = layers.Dense(len(names) - 1, activation="softmax", name="tumour_type")(feats)
    tumour = layers.Multiply(name="type_if_present")([types, layers.Concatenate(name="present_repeated")([present] * (len(names) - 1))])
    absent = layers.Rescaling(-1.0, offset=1.0, name="tumour_absent")(present)
    stacked = layers.Concatenate(name="answers")([tumour, absent])
    # A fixed permutation back to the task's class order: the tumour types, then notumor, -> names.
    order = [i for i in range(len(names)) if i != k] + [k]
    probs = layers.Dense(len(names), use_bias=False, trainable=False, name=PROBS)
    out = probs(stacked)
    probs.set_weights([np.eye(len(names), dtype=np.float32)[order]])
    return keras.Model(model.input, out, name=f"{model.name}_two_questions")


def with_source_head(model: keras.Model, n_sources: int, weight: float, feature_layer: str = "gap",
                     hidden: int = 128) -> keras.Model:
    """A training model with two outputs, ``probs`` and ``source`` (a softmax over the sources,
    behind gradient reversal of ``weight``), sharing every layer of ``model``."""
    x = GradientReversal(weight, name="source_reversal")(_features(model, feature_layer))
    x = layers.Dense(hidden, activation="relu", name="source_hidden")(x)
    source = layers.Dense(n_sources, activation="softmax", name=SOURCE_OUTPUT)(x)
    return keras.Model(model.input, {PROBS: model.get_layer(PROBS).output, SOURCE_OUTPUT: source}, name=f"{model.name}_adversarial")


def app_model(model: keras.Model) -> keras.Model:
    """The model the app runs: ``model`` itself, or without its training-only source head."""
    if not isinstance(model.output, dict):
        return model
    return keras.Model(model.input, model.get_layer(PROBS).output, name=model.name.removesuffix("_adversarial"))


def training_network(base: keras.Model, class_names, two_questions_head: bool, n_sources: int, adversarial_weight: float,
                     init_from=None) -> keras.Model:
    """``base`` (a registered classifier) with the heads the command asks for; ``init_from`` (a
    ``.keras`` file of the app-shaped network) is loaded before a source head is added."""
    model = two_questions(base, class_names) if two_questions_head else base
    if init_from:
        model.load_weights(init_from)
    if adversarial_weight:
        model = with_source_head(model, n_sources, adversarial_weight)
    return model
