"""mri_core.tasks: the one list of tasks, their kinds and class names, and what reads it."""

import json
from pathlib import Path

import pytest

from mri_core.tasks import TASKS, get_task

ROOT = Path(__file__).resolve().parent.parent


def test_each_task_is_named_by_its_key_and_has_a_known_kind():
    for name, task in TASKS.items():
        assert task.name == name
        assert task.kind in ("classifier", "segmenter")
        assert task.title and task.description


def test_class_names_are_unique_and_classifiers_are_sorted():
    for task in TASKS.values():
        assert len(set(task.class_names)) == len(task.class_names)
        if task.kind == "classifier":
            # Keras-style class-per-folder order: the index a model outputs is the sorted folder name's.
            assert list(task.class_names) == sorted(task.class_names)


def test_the_segmentation_task_is_two_class():
    assert [t.class_names for t in TASKS.values() if t.kind == "segmenter"] == [("no tumor", "tumor")]


def test_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match="known tasks: brain_tumor, alzheimer, lgg"):
        get_task("knee")
    assert get_task("lgg") is TASKS["lgg"]


@pytest.mark.parametrize("card", sorted((ROOT / "models").glob("*/card.json")), ids=lambda p: p.parent.name)
def test_every_bundled_card_copies_its_tasks_classes(card):
    c = json.loads(card.read_text())
    task = get_task(c["task"])
    assert c["kind"] == task.kind
    assert tuple(c["class_names"]) == task.class_names


def test_data_folders_are_under_the_shared_data():
    for task in TASKS.values():
        assert task.data_dir.parts[-3:-1] == ("shared", "data") or task.data_dir.parts[-4:-2] == ("shared", "data")
