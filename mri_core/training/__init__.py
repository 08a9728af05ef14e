"""Training: ``python -m mri_core.train TASK --arch NAME [options]`` writes a model and its card.

``cli`` parses the command and dispatches to a recipe (``classifier``, ``segmenter``); ``augment``
makes the training batches, ``callbacks`` the checkpoints, learning-rate schedule and weight
average, ``loop`` the steps both recipes share, ``card`` the card written beside the model.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
