"""mri_core.samples: the bundled samples exist for every task and read cleanly."""

import pytest

from mri_core.io import read_image
from mri_core.samples import list_samples
from mri_core.tasks import TASKS


@pytest.mark.parametrize("task", list(TASKS))
def test_samples(task):
    samples = list_samples(task)
    assert samples, task
    truths = {s.truth for s in samples}
    if TASKS[task].kind == "classifier":
        assert truths == set(TASKS[task].class_names)
    for s in samples:
        assert read_image(s.path.read_bytes(), s.path.name).n_slices == 1
        if s.mask_path:
            assert s.mask_path.exists()
