"""mri_core.display: readable class names and stage order."""

from mri_core.display import display_name, display_order
from mri_core.tasks import TASKS


def test_every_class_has_a_readable_name():
    for task in TASKS.values():
        for c in task.class_names:
            name = display_name(c)
            assert name and "Demented" not in name and name != "notumor"
    assert display_name("notumor") == "no tumour" and display_name("VeryMildDemented") == "very mild dementia"
    assert display_name("something else") == "something else"


def test_dementia_stages_in_order_and_others_as_listed():
    names = TASKS["alzheimer"].class_names
    assert [display_name(names[i]) for i in display_order(names)] == [
        "non-demented", "very mild dementia", "mild dementia", "moderate dementia"]
    tumour = TASKS["brain_tumor"].class_names
    assert display_order(tumour) == [0, 1, 2, 3]


def test_percent_never_rounds_to_a_certainty():
    from mri_core.display import percent

    assert percent(0.42) == "42%" and percent(0.998) == "99.8%" and percent(0.9996) == "> 99.9%"
    assert percent(0.003) == "0.3%" and percent(0.0001) == "< 0.1%" and percent(1.0) == "100%" and percent(0.0) == "0%"
