"""Bad and odd uploads (issue 7): the reader refuses them in plain words or reads them safely,
the predict page survives all of them at once, DICOM patient data stays hidden until asked for,
the server settings keep tracebacks and telemetry in, and uploads never touch the disk."""

from __future__ import annotations

import concurrent.futures
import os
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pytest

from bad_inputs import CASES, IDS, READABLE, UNREADABLE, bad_inputs, colour_photo, good_sample, make
from factories import dicom_bytes, phantom
from mri_core import io as mio
from mri_core.io import ImageStack, UnreadableImage, read_image

ROOT = Path(__file__).resolve().parent.parent
HANG_GUARD_S = 30  # not a speed test: only catches a reader that never returns
TRACEBACK_TEXT = ("Traceback", 'File "')

# Readable cases whose stack must carry a note telling the user what was odd.
EXPECTED_NOTES = {
    "tiff-float-some-nan": "NaN",
    "nifti-some-nan-inf": "NaN",
    "nifti-4d": "4-D",
    "dicom-rgb": "colour",
    "dicom-monochrome1": "MONOCHROME1",
    "gif-animated": "frames",
}


def read_with_hang_guard(data: bytes, name: str) -> ImageStack:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(read_image, data, name).result(timeout=HANG_GUARD_S)
    except concurrent.futures.TimeoutError:
        pytest.fail(f"read_image did not return within {HANG_GUARD_S} s on {name}")
    finally:
        pool.shutdown(wait=False)


def assert_valid_stack(stack: ImageStack) -> None:
    s = stack.slices
    assert stack.n_slices >= 1
    assert s.dtype == np.float32
    assert s.ndim == 3 or (s.ndim == 4 and s.shape[-1] == 3), s.shape
    assert min(s.shape[1:3]) >= mio.MIN_SIDE
    assert np.isfinite(s).all()
    assert s.min() >= 0.0 and s.max() <= 1.0


def assert_plain_message(message: str) -> None:
    assert message.strip()
    for text in TRACEBACK_TEXT:
        assert text not in message, message


# --------------------------------------------------------------------------- (a) the reader


def test_there_are_at_least_30_kinds_of_bad_input():
    cases = list(bad_inputs())
    assert len(cases) >= 30
    assert {c.expectation for c in cases} == {READABLE, UNREADABLE}
    assert all(len(c.data) < 20 * 2**20 for c in cases)


@pytest.mark.parametrize("case_id,name,expectation", [(c[0], c[1], c[3]) for c in CASES], ids=IDS)
def test_read_image_refuses_in_plain_words_or_reads_a_valid_stack(case_id, name, expectation):
    data = make(case_id)
    if expectation == UNREADABLE:
        with pytest.raises(UnreadableImage) as info:
            read_with_hang_guard(data, name)
        assert_plain_message(str(info.value))
    else:
        stack = read_with_hang_guard(data, name)
        assert_valid_stack(stack)
        if case_id in EXPECTED_NOTES:
            assert any(EXPECTED_NOTES[case_id] in n for n in stack.notes), stack.notes


def test_gzip_bomb_is_refused_without_inflating_it():
    """600 MB of zeros behind a header declaring 32 kB: refused before it fills memory."""
    import tracemalloc

    data = make("nifti-gzip-bomb")
    tracemalloc.start()
    try:
        with pytest.raises(UnreadableImage, match="more data"):
            read_image(data, "bomb.nii.gz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MB held while refusing a {len(data) / 2**10:.0f} kB file"


def test_read_image_writes_no_file(tmp_path, monkeypatch):
    """Uploads are read in memory: no file appears in the cwd, the temp dir or the repo, and
    no Python-level open() for writing, mkdir or rename happens while reading every case."""
    cases = list(bad_inputs())
    for name, data, _ in cases:  # warm-up: first imports may write __pycache__ files
        try:
            read_image(data, name)
        except UnreadableImage:
            pass

    work, tmp = tmp_path / "cwd", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    assert tempfile.gettempdir() == str(tmp)

    # Folders that training runs and other test sessions write to while this test runs.
    busy = {".git", ".venv", "__pycache__", ".pytest_cache", "test-artifacts", "checkpoints", "logs", "cache", "models"}

    def repo_files() -> set[Path]:
        found = set()
        for dirpath, dirnames, filenames in os.walk(ROOT):
            dirnames[:] = [d for d in dirnames if d not in busy]
            found.update(Path(dirpath) / f for f in filenames)
        return found

    def listing(folder: Path) -> set[Path]:
        return set(folder.rglob("*"))

    before = (listing(work), listing(tmp), repo_files())
    writes = _record_writes()
    writes.clear()
    _WRITE_LOG["on"] = True
    try:
        for name, data, _ in cases:
            try:
                read_image(data, name)
            except UnreadableImage:
                pass
    finally:
        _WRITE_LOG["on"] = False
    after = (listing(work), listing(tmp), repo_files())
    assert writes == [], writes
    assert after[0] == before[0] == set()
    assert after[1] == before[1] == set()
    assert after[2] - before[2] == set()


_WRITE_LOG: dict = {"on": False, "events": []}
_WRITE_EVENTS = {"os.mkdir", "os.rename", "os.replace", "os.symlink", "os.link", "shutil.copyfile", "shutil.move",
                 "tempfile.mkstemp", "tempfile.mkdtemp", "os.truncate"}


def _record_writes() -> list:
    """Install (once per process) an audit hook that logs writes while _WRITE_LOG['on'] is set."""
    if not _WRITE_LOG.get("installed"):
        write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

        def hook(event, args):
            if not _WRITE_LOG["on"]:
                return
            if event == "open":
                path, mode, flags = (tuple(args) + (None, None, None))[:3]
                if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & write_flags):
                    _WRITE_LOG["events"].append((event, path, mode))
            elif event in _WRITE_EVENTS:
                _WRITE_LOG["events"].append((event, args[:2]))

        sys.addaudithook(hook)
        _WRITE_LOG["installed"] = True
    return _WRITE_LOG["events"]


# --------------------------------------------------------------------------- (e) server settings


def test_server_config_keeps_data_and_tracebacks_in():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["browser"]["gatherUsageStats"] is False
    assert cfg["server"]["enableXsrfProtection"] is True
    assert cfg["client"]["showErrorDetails"] in ("none", False)
    assert cfg["server"]["address"] == "localhost"


# --------------------------------------------------------------------------- the predict page

UPLOAD_KEY = "predict_upload"


@pytest.fixture
def predict_page(use_tiny_models):
    """The app, switched to the predict page, with the tiny models installed."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    at.switch_page("views/predict.py").run()
    assert not at.exception, at.exception
    return at


def uploader(at):
    return at.file_uploader(key=UPLOAD_KEY)


def upload(at, files: list[tuple[str, bytes]]):
    uploader(at).set_value([(name, data, "application/octet-stream") for name, data in files]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rendered_text(at) -> str:
    """Everything the page shows: every element's message (text, labels, values, table data)."""
    parts = []
    for root in (at.main, at.sidebar):
        for node in root:
            proto = getattr(node, "proto", None)
            if proto is not None and hasattr(proto, "SerializeToString"):
                parts.append(proto.SerializeToString().decode("utf-8", "ignore"))
    for table in list(at.table) + list(at.dataframe):
        parts.append(table.value.to_string())
    for kind in (at.markdown, at.caption, at.text, at.title, at.header, at.subheader, at.warning, at.info,
                 at.error, at.success, at.code, at.json):
        parts.extend(str(e.value) for e in kind)
    parts.extend(f"{m.label} {m.value}" for m in at.metric)
    return "\n".join(parts)


@pytest.mark.slow
def test_predict_page_survives_every_bad_file_at_once_and_stays_usable(predict_page):
    at = predict_page
    cases = list(bad_inputs())
    good_name, good = good_sample()
    upload(at, [(c.name, c.data) for c in cases] + [(good_name, good)])

    # the file errors; the box saying some readable slices are abstained on (blank ones are) is not one of them
    errors = [e.value for e in at.error if not e.value.startswith("The model cannot judge")]
    unreadable = [c.name for c in cases if c.expectation == UNREADABLE]
    readable = [c.name for c in cases if c.expectation == READABLE] + [good_name]
    assert len(errors) == len(unreadable), errors
    for name in unreadable:
        assert sum(f"**{name}**" in e for e in errors) == 1, (name, errors)
    for e in errors:
        assert_plain_message(e)
    assert not any(f"**{name}**" in e for name in readable for e in errors)

    table = at.dataframe[0].value
    assert set(table["path"]) == set(readable)
    assert (table["prediction"].notna() | ~table["reliable"].astype(bool)).all()  # a call, or an abstention with its reason
    assert table.loc[~table["reliable"].astype(bool), "reason"].str.len().gt(0).all()
    assert table.loc[table["path"] == good_name, "prediction"].iloc[0] in uploader_task_classes(at)

    # The same session, one good file afterwards: the single-file view works.
    upload(at, [(good_name, good)])
    assert not at.error
    assert at.subheader[0].value == good_name
    prediction = next(m for m in at.metric if m.label == "Prediction")
    assert prediction.value in uploader_task_classes(at)


def uploader_task_classes(at) -> list[str]:
    from mri_core.tasks import TASKS

    return list(TASKS[at.radio(key="predict_task").value].class_names)


@pytest.mark.slow
def test_colour_photograph_is_flagged_as_not_an_mri(predict_page):
    at = upload(predict_page, [("holiday_photo.jpg", colour_photo())])
    assert not at.error
    warnings = [w.value for w in at.warning]
    assert any("colour image" in w or "may not be a brain MRI" in w for w in warnings), warnings


@pytest.mark.slow
def test_dicom_patient_details_stay_hidden_until_asked_for(predict_page):
    data = dicom_bytes((phantom() * 1000).astype(np.uint16), patient_name="Doe^Jane")
    at = upload(predict_page, [("series_0001.dcm", data)])
    assert not at.error
    shown = rendered_text(at)
    assert "Prediction" in shown  # the page did render its result
    assert "Doe^Jane" not in shown
    assert "ID-12345" not in shown  # the patient ID dicom_bytes writes

    toggle = at.toggle(key="predict_patient")
    assert toggle.label == "Show patient details from the DICOM header"
    toggle.set_value(True).run()
    assert not at.exception
    shown = rendered_text(at)
    assert "Doe^Jane" in shown
    assert "ID-12345" in shown
