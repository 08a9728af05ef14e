"""Train a model and write it with its card: ``python -m mri_core.train TASK --arch NAME [options]``.

The command the model cards quote; the work is in ``mri_core.training``.
"""

from mri_core.training.cli import main

if __name__ == "__main__":
    main()
