"""``python -m mri_core.training`` is ``python -m mri_core.train``."""

from mri_core.training.cli import main

main()
