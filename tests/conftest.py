"""Shared fixtures: small synthetic data sets and tiny models trained on them by the real CLI."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from factories import phantom

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def write_class_folder(root: Path, class_names, per_class: int = 6, size: int = 64) -> Path:
    """A class-per-folder set where each class has its blob in a different place."""
    from PIL import Image

    for k, name in enumerate(class_names):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = np.zeros((size + 16, size + 16), np.float32)
            img[8:-8, 8:-8] = phantom(size, size, seed=100 * k + i) * 0.6
            r, c = [(20, 20), (20, 60), (60, 20), (60, 60)][k % 4]
            img[r - 5 : r + 5, c - 5 : c + 5] = 1.0
            Image.fromarray((img * 255).astype(np.uint8)).save(d / f"{name}_{i}.jpg", quality=95)
    return root


def write_lgg_folder(root: Path, patients: int = 4, slices: int = 5, size: int = 64) -> Path:
    """The layout of ../shared/data/lgg: <patient>/<patient>_<n>.jpg, _mask.png, slices.csv."""
    from PIL import Image

    rows = ["patient_id,image_path,mask_path,has_tumor"]
    for p in range(patients):
        pid = f"TCGA_XX_{p:04d}_20000101"
        (root / pid).mkdir(parents=True, exist_ok=True)
        for s in range(1, slices + 1):
            img = np.dstack([phantom(size, size, seed=p * 10 + s)] * 3)
            mask = np.zeros((size, size), np.uint8)
            if s % 2 == 0:
                yy, xx = np.mgrid[0:size, 0:size]
                mask[(yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= 36] = 255
                img[mask > 0] = 1.0
            Image.fromarray((img * 255).astype(np.uint8)).save(root / pid / f"{pid}_{s}.jpg", quality=95)
            Image.fromarray(mask).save(root / pid / f"{pid}_{s}_mask.png")
            rows.append(f"{pid},{pid}/{pid}_{s}.jpg,{pid}/{pid}_{s}_mask.png,{int(mask.any())}")
    (root / "slices.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> dict[str, Path]:
    from mri_core.tasks import TASKS

    base = tmp_path_factory.mktemp("data")
    return {
        "brain_tumor": write_class_folder(base / "brain_tumor", TASKS["brain_tumor"].class_names),
        "alzheimer": write_class_folder(base / "alzheimer", TASKS["alzheimer"].class_names),
        "lgg": write_lgg_folder(base / "lgg"),
    }


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, synthetic_data) -> Path:
    """A models/ folder with one tiny model per task, trained for one epoch by mri_core.train."""
    from mri_core import train

    out = tmp_path_factory.mktemp("models")
    # Checkpoints go to a temporary folder too: a test run leaves nothing in the working tree.
    common = ["--out", str(out), "--checkpoints", str(tmp_path_factory.mktemp("checkpoints")),
              "--epochs", "1", "--size", "32", "--batch-size", "8", "--no-cache", "--default"]
    train.main(["brain_tumor", "--arch", "mri_sepnet", "--data-dir", str(synthetic_data["brain_tumor"]), *common])
    train.main(["alzheimer", "--arch", "mri_sepnet", "--data-dir", str(synthetic_data["alzheimer"]), *common])
    train.main(["lgg", "--arch", "unet_lite", "--data-dir", str(synthetic_data["lgg"]), "--val-patients", "1", *common])
    # A one-sequence (FLAIR) segmenter, not the default: the app picks it for grey uploads.
    train.main(["lgg", "--arch", "unet_lite", "--data-dir", str(synthetic_data["lgg"]), "--val-patients", "1", "--input-channel",
                "flair", "--name", "lgg_flair_unet_lite", *[a for a in common if a != "--default"]])
    for name in ("brain_tumor_mri_sepnet", "alzheimer_mri_sepnet", "lgg_unet_lite", "lgg_flair_unet_lite"):
        make_lenient(out, name)
    return out


def make_lenient(models_dir: Path, name: str) -> None:
    """Widen a tiny model's reliability checks so that the pages' tests see calls and masks. Trained for
    one epoch on 24 phantoms and validated on 8, its covariance rests on 16 images in hundreds of
    dimensions, so any new slice lies far off (100× the threshold), and its per-class precision is
    noise: it would abstain on every slice. The checks themselves are tested on
    hand-made features (test_reliability), on a CT DICOM (the modality rule) and with the real models."""
    from mri_core.models import Registry
    from mri_core.reliability import OOD_FILE, OodDetector

    detector = OodDetector.load(models_dir / name / OOD_FILE)
    OodDetector(detector.means, detector.precisions, detector.scales, np.inf).save(models_dir / name / OOD_FILE)
    registry = Registry(models_dir)
    card = registry.read(name)
    if card.calls:  # a classifier's; a segmenter has only the distance
        calls = {k: replace(c, better_than_chance=True) for k, c in card.calls.items()}
        registry.write(name, replace(card, reliability=replace(card.reliability, calls=calls)))


@pytest.fixture(scope="session")
def two_tumour_models(tiny_models, tmp_path_factory) -> Path:
    """A copy of the tiny models plus ``brain_tumor_second``: the tiny tumour model with its output
    layer's weights negated, so switching to it changes every call (a model-switch test can tell)."""
    import keras

    from mri_core.models import Registry

    out = tmp_path_factory.mktemp("two_models") / "models"
    shutil.copytree(tiny_models, out)
    shutil.copytree(out / "brain_tumor_mri_sepnet", out / "brain_tumor_second")
    model = keras.saving.load_model(out / "brain_tumor_second" / "model.keras", compile=False)
    probs = model.get_layer("probs")
    probs.set_weights([-w for w in probs.get_weights()])
    model.save(out / "brain_tumor_second" / "model.keras")
    registry = Registry(out)
    registry.write("brain_tumor_second", replace(registry.read("brain_tumor_second"), name="brain_tumor_second", default=False))
    return out


@pytest.fixture(scope="session")
def use_tiny_models(tiny_models):
    """Point the default registry (and anything started from this process) at the tiny models,
    through ``$MRI_MODELS_DIR``, which ``models.default_root`` reads at each call."""
    from mri_core.models import ROOT_ENV

    old_env = os.environ.get(ROOT_ENV)
    os.environ[ROOT_ENV] = str(tiny_models)
    yield tiny_models
    if old_env is None:
        os.environ.pop(ROOT_ENV, None)
    else:
        os.environ[ROOT_ENV] = old_env


@pytest.fixture(scope="module")
def classifier(tiny_models):
    """The tiny tumour-type model, loaded once per test module."""
    from mri_core.models import load

    return load("brain_tumor_mri_sepnet", tiny_models)


@pytest.fixture(scope="module")
def segmenter(tiny_models):
    """The tiny three-sequence LGG segmenter, loaded once per test module."""
    from mri_core.models import load

    return load("lgg_unet_lite", tiny_models)


@pytest.fixture(scope="session")
def intensity_segmenter():
    """A real Keras segmenter whose tumour probability is the first channel's brightness (a 1x1
    convolution with fixed weights): the volume rule can then be tested on known lesions."""
    import keras

    from mri_core.cards import Card
    from mri_core.models import LoadedModel

    inp = keras.Input((32, 32, 3))
    conv = keras.layers.Conv2D(1, 1, name="mask")
    model = keras.Model(inp, conv(inp))
    conv.set_weights([np.array([1.0, 0.0, 0.0], np.float32).reshape(1, 1, 3, 1), np.zeros(1, np.float32)])
    card = Card.from_json({"task": "lgg", "kind": "segmenter", "class_names": ["no tumor", "tumor"],
                           "preprocessing": {"crop": False, "size": [32, 32], "channels": 3, "scale": "[0, 1]"},
                           "segmentation": {"threshold": 0.5, "top_k": 4}})
    return LoadedModel("intensity", card, model, Path("intensity.keras"))


# --------------------------------------------------------------------------- databases (issue 28)


@pytest.fixture(scope="session", autouse=True)
def _case_database(tmp_path_factory):
    """The app's case database during tests: a SQLite file in a temporary folder (never data/ in
    the working tree), unless a test names another through MRI_INSIGHT_DB_URL."""
    from mri_core.store import URL_ENV

    old = os.environ.get(URL_ENV)
    os.environ[URL_ENV] = f"sqlite:///{tmp_path_factory.mktemp('case_db') / 'mri_insight.db'}"
    yield
    if old is None:
        os.environ.pop(URL_ENV, None)
    else:
        os.environ[URL_ENV] = old


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server of Debian's ``postgresql`` package, started for this test session and
    stopped at its end. Missing binaries skip, except in CI (CI=true), where they fail."""
    from pg_server import PostgresServer, pg_bin

    bin_dir = pg_bin()
    if bin_dir is None:
        message = "PostgreSQL is not installed (scripts/setup.sh --dev installs Debian's postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(bin_dir)
    server.start()
    yield server
    try:
        server.stop()
    finally:
        server.remove()

# The PACS (Orthanc) fixtures: pacs_server, pacs_with_login, pacs_refusing_seg, silent_server.
from pacs_server import pacs_refusing_seg, pacs_server, pacs_with_login, silent_server  # noqa: E402,F401
