"""mri_core.batch: a folder scored on a 2-worker LocalCluster equals in-process inference, row for row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factories import dicom_bytes, encode, nifti_bytes, phantom, png_bytes
from mri_core import batch, batch_sinks, models, rows
from mri_core.io import read_image

# relative path -> slices it must give; the bad files -> a word their error must contain
GOOD = {
    "a/slice_0.png": 1, "a/slice_1.png": 1, "a/slice_2.png": 1, "b/deep/slice_3.png": 1, "b/slice_4.png": 1,
    "colour.jpg": 1, "scan.tif": 1, "IM0001": 1, "series/multiframe.dcm": 3, "volume.nii.gz": 4,
}
BAD = {"bad/empty.png": "empty", "bad/notes.txt": "not an image", "bad/truncated.png": "cut off"}


def gray(seed: int, size: int = 48) -> np.ndarray:
    return (phantom(size, size, seed=seed) * 255).astype(np.uint8)


def write_folder(root: Path) -> Path:
    """~10 readable files in every format (one multi-frame DICOM, one NIfTI), 3 bad ones, litter."""
    files = {f"a/slice_{i}.png": png_bytes(gray(i)) for i in range(3)}
    files["b/deep/slice_3.png"] = png_bytes(gray(3))
    files["b/slice_4.png"] = png_bytes(gray(4, 64))
    files["colour.jpg"] = encode(np.dstack([gray(5), gray(6), gray(7)]), "JPEG", quality=95)
    files["scan.tif"] = encode(gray(8, 56), "TIFF")
    files["IM0001"] = dicom_bytes((gray(9).astype(np.uint16) * 16), patient_name="Doe^Jane")  # no extension
    files["series/multiframe.dcm"] = dicom_bytes(np.stack([gray(10 + k).astype(np.uint16) * 16 for k in range(3)]))
    files["volume.nii.gz"] = nifti_bytes(np.stack([phantom(40, 40, seed=20 + k) for k in range(4)], axis=-1), gz=True)
    files["bad/empty.png"] = b""
    files["bad/notes.txt"] = b"patient list, not an image\n"
    files["bad/truncated.png"] = png_bytes(gray(11))[:200]
    files[".DS_Store"] = b"\x00\x00\x00\x01Bud1"  # hidden litter: skipped, not an error row
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("scans"))


@pytest.fixture(scope="module")
def cluster(use_tiny_models):
    """Two single-threaded worker processes, started after the registry points at the tiny models."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="3GiB",
                      dashboard_address=":0") as c, Client(c) as client:
        yield c.scheduler_address, client


def score(folder: Path, out: Path, task: str, scheduler: str, *extra: str) -> int:
    return batch.main([str(folder), "--task", task, "--out", str(out), "--scheduler", scheduler,
                       "--files-per-task", "3", *extra])


# --------------------------------------------------------------------------- with a cluster


@pytest.mark.slow
def test_one_row_per_slice_and_an_error_row_per_bad_file(folder, cluster, tmp_path):
    out = tmp_path / "out.csv"
    assert score(folder, out, "brain_tumor", cluster[0]) == 0
    df = pd.read_csv(out)

    good, bad = df[df["error"].isna()], df[df["error"].notna()]
    assert good.groupby("path").size().to_dict() == GOOD
    assert set(bad["path"]) == set(BAD) and len(bad) == len(BAD)
    for rel, word in BAD.items():
        assert word in bad.loc[bad["path"] == rel, "error"].iloc[0], rel
    assert bad["prediction"].isna().all() and bad["slice"].isna().all()
    for rel, n in GOOD.items():
        assert sorted(good.loc[good["path"] == rel, "slice"]) == list(range(1, n + 1))  # numbered from 1, as in the app
    assert list(df.columns) == rows.BASE_COLUMNS + [
        "p_glioma", "p_meningioma", "p_notumor", "p_pituitary", "tumor_probability", "area_px", "area_mm2", "error"]
    assert good[["tumor_probability", "area_px", "area_mm2"]].isna().all().all()  # a segmenter's figures only
    # Relative paths only, nothing from the DICOM header, no hidden litter.
    text = out.read_text()
    assert str(folder) not in text and "Doe" not in text and "ID-12345" not in text and ".DS_Store" not in text
    assert set(df["task"]) == {"brain_tumor"} and set(df["model"]) == {models.default_model("brain_tumor")}


@pytest.mark.slow
def test_results_equal_in_process_inference(folder, cluster, tmp_path):
    from mri_core import inference

    out = tmp_path / "out.csv"
    assert score(folder, out, "alzheimer", cluster[0], "--batch-size", "5") == 0
    df = pd.read_csv(out).set_index(["path", "slice"])
    loaded = models.load(models.default_model("alzheimer"))
    for rel in GOOD:
        stack = read_image((folder / rel).read_bytes(), Path(rel).name)
        for k, p in enumerate(inference.classify(loaded, list(stack.slices))):
            row = df.loc[(rel, k + 1)]
            assert row["top_class"] == p.label, (rel, k)
            # No call in the prediction column where the app abstains.
            assert (row["prediction"] == p.label) if p.reliable else pd.isna(row["prediction"]), (rel, k)
            assert row["confidence"] == pytest.approx(p.confidence, abs=1e-5) if p.reliable else pd.isna(row["confidence"])
            assert row["uncertainty"] == pytest.approx(p.uncertainty, abs=1e-5)
            got = row[[rows.prob_column(c) for c in p.class_names]].to_numpy(float)
            np.testing.assert_allclose(got, p.probs, atol=1e-5)


@pytest.mark.slow
def test_lgg_to_parquet_equals_segment_and_measure(folder, cluster, tmp_path):
    from mri_core import inference
    from mri_core.measure import measure

    out = tmp_path / "lgg.parquet"
    assert score(folder, out, "lgg", cluster[0]) == 0
    assert not Path(str(out) + ".parts").exists()  # folded into the one file
    df = pd.read_parquet(out)
    assert list(df.columns) == rows.BASE_COLUMNS + ["p_no_tumor", "p_tumor", "tumor_probability", "area_px", "area_mm2", "error"]
    assert df["error"].notna().sum() == len(BAD)
    good = df[df["error"].isna()].set_index(["path", "slice"])
    assert good["uncertainty"].isna().all()
    loaded = models.load(models.default_model("lgg"))
    for rel in GOOD:
        stack = read_image((folder / rel).read_bytes(), Path(rel).name)
        for k, s in enumerate(inference.segment(loaded, list(stack.slices), volume=True)):
            row = good.loc[(rel, k + 1)]
            m = measure(s.mask, stack.spacing_mm)
            assert row["prediction"] == ("tumor" if s.present else "no tumor")
            assert row["tumor_probability"] == pytest.approx(s.tumour_probability, abs=1e-5)
            expected = max(s.tumour_probability, 1 - s.tumour_probability)
            assert row["confidence"] == pytest.approx(expected, abs=1e-5) if s.reliable else pd.isna(row["confidence"])
            assert row["p_tumor"] == pytest.approx(s.tumour_probability, abs=1e-5)
            assert row["area_px"] == m.area_px
            if m.area_mm2 is None:
                assert np.isnan(row["area_mm2"])
            else:
                assert row["area_mm2"] == pytest.approx(m.area_mm2)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_second_run_does_no_new_work(folder, cluster, tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    args = dict(task="brain_tumor", out=out, scheduler=cluster[0], files_per_task=3)
    first = batch.run(folder, **args)
    assert (first.files_scored, first.files_unreadable, first.files_skipped) == (len(GOOD), len(BAD), 0)
    before = read(out)

    again = batch.run(folder, **args)
    assert (again.files_scored, again.files_unreadable, again.files_skipped) == (0, 0, len(GOOD) + len(BAD))
    pd.testing.assert_frame_equal(read(out), before)
    assert "13 skipped" in batch.report(again)


@pytest.mark.slow
def test_resume_scores_only_what_is_missing_and_repairs_a_torn_tail(folder, cluster, tmp_path):
    out = tmp_path / "out.csv"
    full = batch.run(folder, "brain_tumor", out, scheduler=cluster[0], files_per_task=3)
    reference = read(out)
    lines = out.read_text().splitlines(keepends=True)
    # Keep the header and the first rows, then a crash in the middle of writing the next line;
    # the multi-frame file ends up with only some of its slices and must be scored again whole.
    multi = [i for i, line in enumerate(lines) if line.startswith("series/multiframe.dcm,")]
    cut = multi[1]
    out.write_text("".join(lines[:cut]) + lines[cut][:10])
    kept_files = {line.split(",")[0] for line in lines[1:cut]} - {"series/multiframe.dcm"}

    resumed = batch.run(folder, "brain_tumor", out, scheduler=cluster[0], files_per_task=3)
    assert resumed.files_skipped == len(kept_files)
    assert resumed.files_scored + resumed.files_unreadable == full.files_found - len(kept_files)
    after = read(out)
    assert not after.duplicated(["path", "slice"]).any()
    key = ["path", "slice"]
    pd.testing.assert_frame_equal(after.sort_values(key).reset_index(drop=True),
                                  reference.sort_values(key).reset_index(drop=True), atol=1e-6)


@pytest.mark.slow
def test_a_failed_chunk_writes_nothing_and_is_retried_by_a_rerun(folder, cluster, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.csv"
    # The client believes in another model file than the workers hold: every chunk refuses to run.
    monkeypatch.setattr(batch, "file_sha256", lambda path: "0" * 64)
    assert score(folder, out, "brain_tumor", cluster[0]) == 1
    assert "identical to the client's" in capsys.readouterr().err
    assert not out.exists()
    monkeypatch.undo()
    again = batch.run(folder, "brain_tumor", out, scheduler=cluster[0])
    assert (again.files_scored, again.files_failed, again.files_skipped) == (len(GOOD), 0, 0)


@pytest.mark.slow
def test_each_worker_loads_a_model_once(folder, cluster, tmp_path):
    scheduler, client = cluster

    def cached():
        return {k[1]: id(v) for k, v in batch._MODELS.items()}

    batch.run(folder, "brain_tumor", tmp_path / "first.csv", scheduler=scheduler, files_per_task=1)
    first = client.run(cached)
    assert any(models.default_model("brain_tumor") in names for names in first.values())
    batch.run(folder, "brain_tumor", tmp_path / "second.csv", scheduler=scheduler, files_per_task=1)
    second = client.run(cached)
    # 13 one-file tasks a run, two runs, and each worker still holds the object it loaded first.
    for worker, names in first.items():
        for name, ident in names.items():
            assert second[worker][name] == ident


def test_workers_on_one_machine_share_its_cores(folder, cluster, tmp_path):
    import os

    scheduler, client = cluster
    batch.run(folder, "brain_tumor", tmp_path / "out.csv", scheduler=scheduler)
    assert list(batch.workers_by_host(client).values()) == [2]  # both workers on this machine

    def tensorflow_threads():
        import tensorflow as tf

        return tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads()

    expected = batch.tf_threads(os.cpu_count(), 2)
    assert set(client.run(tensorflow_threads).values()) == {(expected, expected)}
    assert (batch.tf_threads(2, 2), batch.tf_threads(16, 3), batch.tf_threads(1, 4)) == (1, 5, 1)
    assert batch.share_cores({"127.0.0.1": 2}) is None  # outside a worker: TensorFlow keeps its defaults


@pytest.mark.slow
def test_without_scheduler_a_local_cluster_is_started(folder, use_tiny_models, tmp_path, capsys):
    out = tmp_path / "out.csv"
    assert batch.main([str(folder), "--task", "brain_tumor", "--out", str(out), "--workers", "1",
                       "--memory-limit", "3GiB"]) == 0
    assert len(pd.read_csv(out)) == sum(GOOD.values()) + len(BAD)
    assert "0 skipped" in capsys.readouterr().err


@pytest.mark.slow
def test_benchmark_reports_both_throughputs_and_worker_memory(use_tiny_models, capsys):
    from bench import batch as bench

    bench.main(["--files", "8", "--workers", "1", "--repeats", "1", "--memory-limit", "3GiB", "--json"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["bare"]["images_per_s"] > 0 and report["bare"]["views_per_slice"] == 4
    assert report["warm"]["slices"] == 8 and report["warm"]["slices_per_s"] > 0
    assert len(report["memory_per_worker"]) == 1 and report["memory_per_worker"][0]["rss_mb"] > 0


# --------------------------------------------------------------------------- without one


def read(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out)


def test_another_model_in_the_same_out_is_refused(use_tiny_models, tmp_path, folder):
    out = tmp_path / "out.csv"
    spec = batch.resolve_model("brain_tumor", None, use_tiny_models)
    cols = rows.columns(spec.class_names)
    batch_sinks.CsvSink(out, cols).append(rows.to_frame(
        [{"path": "x.png", "slice": 1, "n_slices": 1, "task": "brain_tumor", "model": spec.name, "prediction": "glioma"}], cols))
    with pytest.raises(SystemExit, match="another --out"):
        batch.run(folder, "alzheimer", out)


def test_a_model_for_another_task_is_refused(use_tiny_models):
    with pytest.raises(SystemExit, match="not lgg"):
        batch.resolve_model("lgg", models.default_model("brain_tumor"), use_tiny_models)


def test_listing_skips_hidden_files_and_the_output(tmp_path):
    (tmp_path / "x.png").write_bytes(b"1")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "y.png").write_bytes(b"1")
    (tmp_path / "out.parquet.parts").mkdir()
    (tmp_path / "out.parquet.parts" / "part-1.parquet").write_bytes(b"1")
    found = batch.list_inputs(tmp_path, exclude=[tmp_path / "out.parquet", tmp_path / "out.parquet.parts"])
    assert [rel for _, rel in found] == ["x.png"]


@pytest.mark.parametrize("n_files,n_workers,expected", [(13, 2, 2), (1000, 2, 64), (3, 8, 1), (0, 0, 1)])
def test_chunks_are_cut_finer_for_small_folders(n_files, n_workers, expected):
    assert batch.chunk_size(n_files, n_workers, 64) == expected


def test_a_file_is_finished_with_an_error_row_or_all_its_slices():
    df = pd.DataFrame({"path": ["a", "b", "b", "c"], "n_slices": [1, 3, 3, None],
                       "error": [None, None, None, "The file is empty (0 bytes)."]})
    assert batch_sinks.finished_paths(df) == {"a", "c"}


def test_rows_say_where_the_app_would_abstain(use_tiny_models, tmp_path):
    """A DICOM whose modality is CT is abstained on, with the reason in the row; an MR one is not
    abstained on for its modality."""
    (tmp_path / "mr.dcm").write_bytes(dicom_bytes(gray(1).astype(np.uint16) * 16, modality="MR"))
    (tmp_path / "ct.dcm").write_bytes(dicom_bytes(gray(2).astype(np.uint16) * 16, modality="CT"))
    spec = batch.resolve_model("brain_tumor", None, use_tiny_models)
    files = [(str(tmp_path / n), n) for n in ("ct.dcm", "mr.dcm")]
    scored = {r["path"]: r for r in batch.score_chunk(files, spec)}
    assert scored["ct.dcm"]["reliable"] is False and "modality is CT" in scored["ct.dcm"]["reason"]
    assert "modality" not in scored["mr.dcm"]["reason"]
    assert "modality is CT" in scored["ct.dcm"]["warnings"]  # the page's warning too
    frame = rows.to_frame(list(scored.values()), rows.columns(spec.class_names))
    assert {"reliable", "reason"} <= set(frame.columns) and str(frame["reliable"].dtype) == "boolean"
