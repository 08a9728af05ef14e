"""Predictions from a loaded model: calibrated class probabilities with an uncertainty, and masks.

Uncertainty comes from test-time augmentation (TTA): every slice is seen in four views
(as is, mirrored left-right, zoomed in 10 %, both). The probabilities shown are the mean over
the views after temperature scaling (the temperature is fitted on the validation split and
stored in the card); the uncertainty is the standard deviation over the views of the winning
class's probability (0 = the views agree; 0.5 = they flip between certain answers).

Tumour masks are the mean of two views' probability maps: the slice and its left-right mirror,
mapped back (``segmentation_maps``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from mri_core.models import LoadedModel
from mri_core.preprocess import brain_box, intensity_gain, prepare, resize, to_gray
from mri_core.segmentation import is_present, lesion_mask, postprocess

ZOOM = 0.9  # the zoomed TTA views keep the central 90 %
CLASSIFIER_VIEWS = 4  # tta_views: as is, mirrored, zoomed, both
SEGMENTER_VIEWS = 2  # segmentation_maps: the slice and its mirror


def views_per_image(kind: str) -> int:
    """How many forward passes one image costs a model of ``kind`` with TTA on."""
    return CLASSIFIER_VIEWS if kind == "classifier" else SEGMENTER_VIEWS
BATCH = 32
LOW_CONFIDENCE = 0.6
HIGH_UNCERTAINTY = 0.15


@dataclass
class ClassPrediction:
    probs: np.ndarray  # calibrated, mean over TTA views
    class_names: list[str]
    uncertainty: float  # std over views of the top class probability
    view_probs: np.ndarray = field(repr=False)  # (views, classes), calibrated
    reliable: bool = True  # False: the model cannot judge this image; the page abstains instead of calling
    reason: str = ""  # plain-language why, when not reliable
    ood_score: float | None = None  # how far its features lie from the training images' (reliability.OodDetector)

    @property
    def index(self) -> int:
        return int(np.argmax(self.probs))

    @property
    def label(self) -> str:
        return self.class_names[self.index]

    @property
    def confidence(self) -> float:
        return float(self.probs[self.index])


@dataclass
class SegPrediction:
    prob: np.ndarray  # tumour probability per pixel at the slice's own size
    mask: np.ndarray  # bool, prob >= threshold
    tumour_probability: float  # probability that the slice shows a tumour at all
    reliable: bool = True  # False: the slice is unlike the training slices; the page says the model cannot judge it
    reason: str = ""  # plain-language why, when not reliable
    ood_score: float | None = None  # how far its features lie from the training slices' (reliability.OodDetector)

    @property
    def present(self) -> bool:
        return is_present(self.tumour_probability)


def tta_views(x: np.ndarray) -> np.ndarray:
    """(N, H, W, C) -> (N, 4, H, W, C): identity, mirror, central zoom, mirrored zoom."""
    n, h, w, c = x.shape
    dh, dw = int(round(h * (1 - ZOOM) / 2)), int(round(w * (1 - ZOOM) / 2))
    zoom = np.stack([resize(im[dh : h - dh, dw : w - dw], (h, w)) for im in x]).reshape(x.shape)
    return np.stack([x, x[:, :, ::-1], zoom, zoom[:, :, ::-1]], axis=1)  # CLASSIFIER_VIEWS of them


def segmentation_maps(predict, x: np.ndarray, tta: bool = True) -> np.ndarray:
    """Tumour probability maps (N, H, W) from ``predict`` (a model's forward pass, returning
    (N, H, W, 1)) on prepared inputs ``x``.

    With ``tta`` the map is the mean of the slice's and of its left-right mirror's, the mirror's
    flipped back. The segmenters were trained with mirrored slices, so both views are ones the
    network knows, and the mirror's inverse is exact (unlike a zoom's at the border). What it
    gained on validation: docs/experiments.md.
    """
    if not tta:
        return np.asarray(predict(x))[..., 0]
    both = np.asarray(predict(np.concatenate([x, x[:, :, ::-1]])))[..., 0]
    return (both[: len(x)] + both[len(x) :, :, ::-1]) / 2


def calibrate(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T), which equals softmax(logits / T) for a softmax output."""
    if temperature == 1.0:
        return probs
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=-1, keepdims=True)


def run_model(loaded: LoadedModel, x: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """Forward pass in fixed-size batches through the model's compiled predict function."""
    outs = [np.asarray(loaded.keras_model.predict_on_batch(x[i : i + batch])) for i in range(0, len(x), batch)]
    return np.concatenate(outs) if outs else np.zeros((0,))


def prepare_inputs(loaded: LoadedModel, slices: list[np.ndarray]) -> np.ndarray:
    pre = loaded.preprocessing
    return np.stack([prepare(s, pre) for s in slices])


def classify_prepared(loaded: LoadedModel, x: np.ndarray, tta: bool = True) -> np.ndarray:
    """(N, views, classes) calibrated probabilities for already prepared inputs."""
    return classify_views(loaded, x, tta)[0]


def classify_views(loaded: LoadedModel, x: np.ndarray, tta: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """((N, views, classes) calibrated probabilities, (N,) out-of-distribution distances or None):
    where the model has a detector, one pass gives both, the distance from the image as it is."""
    views = tta_views(x) if tta else x[:, None]
    n, v = views.shape[:2]
    flat = views.reshape((n * v,) + views.shape[2:])
    if loaded.ood is None or not len(flat):
        raw, distances = run_model(loaded, flat, batch=BATCH * v), None
    else:
        from mri_core.reliability import probs_and_features

        raw, feats = probs_and_features(loaded.features_model, flat, batch=BATCH * v)
        distances = loaded.ood.distance([f.reshape(n, v, -1)[:, 0] for f in feats])
    return calibrate(raw.reshape(n, v, -1), loaded.temperature), distances


def classify(loaded: LoadedModel, slices: list[np.ndarray], tta: bool = True,
             modality: str | list[str] = "unknown") -> list[ClassPrediction]:
    """Class probabilities, calibrated, with a TTA uncertainty, for each slice; ``modality`` is the
    file's own (a DICOM's Modality; one for all slices, or one per slice), which can rule the call
    out (``reliability.judge``)."""
    if not slices:
        return []
    return classify_inputs(loaded, prepare_inputs(loaded, slices), tta, modality)


def classify_inputs(loaded: LoadedModel, x: np.ndarray, tta: bool = True,
                    modality: str | list[str] = "unknown") -> list[ClassPrediction]:
    """``classify`` for inputs already through ``prepare`` (N, H, W, C): pages that also draw
    Grad-CAM on the prepared input prepare it once."""
    view_probs, distances = classify_views(loaded, x, tta)
    if distances is None:
        distances = [None] * len(view_probs)
    modalities = _modalities(modality, len(view_probs))
    return [_class_prediction(vp, loaded, d, m, xi) for vp, d, m, xi in zip(view_probs, distances, modalities, x)]


def _modalities(modality: str | list[str], n: int) -> list[str]:
    return [modality] * n if isinstance(modality, str) else list(modality)


def _class_prediction(view_probs: np.ndarray, loaded: LoadedModel, distance: float | None, modality: str,
                      model_input: np.ndarray) -> ClassPrediction:
    from mri_core.reliability import judge

    probs = view_probs.mean(axis=0)
    top = int(np.argmax(probs))
    names = loaded.class_names
    validation = loaded.card.validation
    reliable, reason = judge(names[top], distance, loaded.ood, loaded.card.calls,
                             validation.balanced_accuracy if validation else None, modality, model_input)
    return ClassPrediction(probs=probs, class_names=names, uncertainty=float(view_probs[:, top].std()), view_probs=view_probs,
                           reliable=reliable, reason=reason, ood_score=None if distance is None else float(distance))


def segment(loaded: LoadedModel, slices: list[np.ndarray], volume: bool = False, tta: bool = True,
            modality: str | list[str] = "unknown") -> list[SegPrediction]:
    """Tumour masks at each slice's own size, with a per-slice tumour probability, and whether the
    model can judge each slice: ``reliability.judge``, as for a classifier's call, on the file's
    own ``modality`` (one for all slices, or one per slice), a blank slice and the distance of its
    features from the training slices'.

    ``tta``: maps averaged with the mirrored slice's (``segmentation_maps``), as the cards' figures
    and presence rules were measured.

    ``volume=True``: the slices are one volume in order (a NIfTI file, a DICOM series, one
    patient's slices); only its main connected lesion is kept (``segmentation.keep_main_lesion``), and a
    slice whose detection was removed is scored again without it.
    """
    if not slices:
        return []
    from mri_core.reliability import judge

    rule = loaded.card.segmentation_rule
    threshold = float(rule.threshold)
    x = prepare_inputs(loaded, slices)
    probs, distances = _maps_and_distances(loaded, x, tta)
    probs, scores = postprocess(probs, threshold, int(rule.top_k), volume)
    out = []
    for s, xi, p, score, distance, m in zip(slices, x, probs, scores, distances, _modalities(modality, len(slices))):
        full = np.clip(resize(p.astype(np.float32), s.shape[:2]), 0.0, 1.0)
        mask = lesion_mask(full[None], [score], threshold)[0]
        reason = judge("", distance, loaded.ood, None, modality=m, model_input=xi)[1]
        out.append(SegPrediction(prob=full, mask=mask, tumour_probability=float(score), reliable=not reason, reason=reason,
                                 ood_score=None if distance is None else float(distance)))
    return out


def _maps_and_distances(loaded: LoadedModel, x: np.ndarray, tta: bool) -> tuple[np.ndarray, list[float | None]]:
    """(tumour maps (N, H, W), out-of-distribution distances or Nones): where the segmenter has a
    detector, the pass that draws the maps also gives the features, of the slice as it is."""
    if loaded.ood is None:
        return segmentation_maps(lambda v: run_model(loaded, v), x, tta), [None] * len(x)
    from mri_core.reliability import probs_and_features

    features: list[np.ndarray] = []

    def predict(views: np.ndarray) -> np.ndarray:  # the slices first, then (with tta) their mirrors
        maps, feats = probs_and_features(loaded.features_model, views, batch=BATCH)
        features.extend(f[: len(x)] for f in feats)
        return maps

    maps = segmentation_maps(predict, x, tta)
    return maps, [float(d) for d in loaded.ood.distance(features)]


# --------------------------------------------------------------------------- warnings


def input_warnings(image: np.ndarray, loaded: LoadedModel, prediction: ClassPrediction | None = None, modality: str = "unknown",
                   model_input: np.ndarray | None = None) -> list[str]:
    """Plain-language reasons to doubt a prediction: wrong kind of image, or an unsure model.

    ``model_input`` is ``prepare(image, loaded.preprocessing)`` where the caller already has it.
    """
    from mri_core.reliability import modality_reason

    warnings: list[str] = []
    if modality_reason(modality):
        warnings.append(modality_reason(modality))
    pre = loaded.card.preprocessing
    if image.ndim == 3 and image.shape[-1] == 3 and pre.channels == 1:
        spread = float(np.abs(image - image.mean(axis=-1, keepdims=True)).mean())
        if spread > 0.02:
            warnings.append("This is a colour image; MRI slices are grey. It may be a photograph or a screenshot, not a scan.")
    gray = to_gray(image)
    top, bottom, left, right = brain_box(gray)
    dark = float((gray < 0.1).mean())
    if (bottom - top) * (right - left) >= 0.98 * gray.size and dark < 0.05:
        warnings.append("No dark background around a head was found: this may not be a brain MRI slice.")
    spec = pre.intensity
    if spec:  # the gain prepare() applies: on the slice at model size and channels, before the step itself
        plain = replace(pre, intensity=None).to_json()
        gain = intensity_gain(prepare(image, plain), spec.reference_p99, float(spec.max_gain))
        if gain.max() >= float(spec.max_gain):
            warnings.append(f"This image is much darker than the training slices: it was brightened {spec.max_gain:g}× "
                            "(the most allowed) and may still be too dark for the model.")
    stats = loaded.card.input_stats
    if stats:  # measured on prepared (cropped, resized) training inputs: compare like with like
        x = prepare(image, loaded.preprocessing) if model_input is None else model_input
        mean = float(x.mean())
        z = abs(mean - stats.mean) / max(stats.std, 1e-6)
        if z > 4:
            warnings.append(f"The image's brightness is far from anything in the training data ({z:.0f} standard deviations).")
    if prediction is not None:
        if prediction.confidence < LOW_CONFIDENCE:
            warnings.append(f"The model is unsure: its top answer has only {prediction.confidence:.0%} probability.")
        if prediction.uncertainty > HIGH_UNCERTAINTY:
            warnings.append("The answer changes when the image is mirrored or zoomed slightly (high uncertainty).")
    return warnings


# --------------------------------------------------------------------------- one slice, as a page draws it


@dataclass(frozen=True)
class SliceAnalysis:
    """Everything a page draws for one slice, from one preparation of it (``analyse_slice``)."""

    model_input: np.ndarray = field(repr=False)  # prepare(image, card): what the network sees
    warnings: tuple[str, ...]  # input_warnings: reasons to doubt the result
    prediction: ClassPrediction | None = None  # a classifier's; None for a segmenter (its masks come from the whole volume)
    heatmap: np.ndarray | None = field(default=None, repr=False)  # Grad-CAM in [0, 1] at the model input's size
    gradcam: np.ndarray | None = field(default=None, repr=False)  # the heatmap over the model input, RGB uint8
    features: np.ndarray | None = field(default=None, repr=False)  # (H', W', C') activations of the layer asked for

    @property
    def input_image(self) -> np.ndarray:
        """The model input as a picture: grey (H, W) for a one-channel model, else RGB."""
        x = self.model_input
        return x[..., 0] if x.shape[-1] == 1 else x


def analyse_slice(loaded: LoadedModel, image: np.ndarray, modality: str = "unknown", *, gradcam: bool = True,
                  target: int | None = None, layer: str | None = None, features: bool = False) -> SliceAnalysis:
    """Prepare ``image`` once, then classify it (a classifier), explain it with Grad-CAM and say what
    to doubt; ``modality`` is the file's own (it can rule a call out).

    ``target``: the class Grad-CAM explains (default the top class; a segmenter's target is its
    summed tumour probability). ``layer``: the Grad-CAM layer (default the card's), whose feature
    maps come too with ``features``. ``gradcam=False`` skips the heat map where a page draws none.
    """
    from mri_core import explain

    x = prepare(image, loaded.preprocessing)
    pred = classify_inputs(loaded, x[None], modality=modality)[0] if loaded.kind == "classifier" else None
    heat = picture = maps = None
    if gradcam:
        heat = explain.gradcam(loaded, x, pred.index if target is None and pred is not None else target, layer_name=layer)
        picture = explain.overlay(x[..., 0] if x.shape[-1] == 1 else x, heat)
    if features:
        if layer is None:
            raise ValueError("features=True needs the layer whose feature maps to give")
        maps = explain.feature_maps(loaded, x, layer)
    warnings = input_warnings(image, loaded, pred, modality, model_input=x)
    return SliceAnalysis(model_input=x, warnings=tuple(warnings), prediction=pred, heatmap=heat, gradcam=picture,
                         features=maps)
