"""mri_core.compare: side-by-side evaluation, ROC, disagreements, latency."""


from mri_core import compare
from mri_core.models import load


def test_evaluate_and_disagree(tiny_models, synthetic_data):
    m = load("brain_tumor_mri_sepnet", tiny_models)
    runs = compare.evaluate_classifiers([m, m], synthetic_data["brain_tumor"])
    assert len(runs) == 2 and runs[0].report["n"] == 24
    assert compare.disagreements(runs, m.class_names) == []  # a model never disagrees with itself
    flipped = compare.ClassifierRun("other", runs[0].labels, runs[0].probs[:, ::-1], runs[0].paths, runs[0].report)
    diff = compare.disagreements([runs[0], flipped], m.class_names)
    assert diff and set(diff[0]["calls"]) == {m.name, "other"}
    roc = compare.roc_per_class(runs[0].labels, runs[0].probs, m.class_names)
    assert set(roc) == set(m.class_names) and all(0 <= r["auc"] <= 1 for r in roc.values())
    assert compare.cpu_latency_ms(m, repeats=3) > 0


def test_segmenters(tiny_models, synthetic_data):
    out = compare.evaluate_segmenters([load("lgg_unet_lite", tiny_models)], synthetic_data["lgg"])
    assert 0 <= out["lgg_unet_lite"]["dice_patient_mean"] <= 1


def test_count_images(synthetic_data):
    from mri_core.compare import count_images
    from mri_core.tasks import TASKS

    assert count_images(synthetic_data["brain_tumor"], list(TASKS["brain_tumor"].class_names)) == 24
    assert count_images(synthetic_data["lgg"], None) == 20
