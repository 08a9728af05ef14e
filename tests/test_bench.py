"""bench/run.py: the report's shape on tiny models. Only keys and types: timings vary by machine."""

import json

import pytest

from bench import run as bench
from mri_core.io import read_image

MODEL_KEYS = {
    "name": str,
    "task": str,
    "kind": str,
    "latency_ms": float,
    "ratio_to_reference": float,
    "throughput_ips": float,
    "load_s": float,
    "params": int,
    "file_mb": float,
}
PIPELINE_KEYS = ("preprocess_ms", "gradcam_ms", "end_to_end_ms", "segment_end_to_end_ms", "peak_rss_mb")


@pytest.mark.slow
def test_json_report_on_tiny_models(use_tiny_models, capsys):
    bench.main(["--repeats", "2", "--skip-cold-start", "--json"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    assert report["reference"]["name"] == "MobileNetV2"
    assert isinstance(report["reference"]["latency_ms"], float)
    assert {m["task"] for m in report["models"]} == {"brain_tumor", "alzheimer", "lgg"}
    for m in report["models"]:
        for key, kind in MODEL_KEYS.items():
            assert isinstance(m[key], kind), (m["name"], key)
        assert m["kind"] in ("classifier", "segmenter")
    for key in PIPELINE_KEYS:  # every task has a model here, so none of these may be missing
        assert isinstance(report[key], (int, float)), key
    assert report["cold_start_s"] is None and isinstance(report["cold_start_error"], str)
    assert isinstance(report["machine"]["cpu_count"], int) and isinstance(report["machine"]["platform"], str)
    assert isinstance(report["date"], str)


@pytest.mark.slow
def test_table_and_model_filter(use_tiny_models, capsys):
    report = bench.main(["--repeats", "1", "--skip-cold-start", "--models", "lgg_unet_lite"])
    out = capsys.readouterr().out
    assert "lgg_unet_lite" in out and "MobileNetV2" in out
    assert [m["name"] for m in report["models"]] == ["lgg_unet_lite"]
    assert report["gradcam_ms"] is None and isinstance(report["segment_end_to_end_ms"], float)


def test_unknown_model_is_refused(use_tiny_models):
    with pytest.raises(SystemExit):
        bench.main(["--models", "no_such_model"])


def test_cold_start_without_app_records_why(tmp_path):
    seconds, error = bench.cold_start(tmp_path / "app.py")
    assert seconds is None and "does not exist" in error


@pytest.mark.slow
def test_cold_start_times_a_page_and_reports_a_crash(tmp_path):
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "app.py").write_text('import streamlit as st\nst.title("hello")\n')
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "app.py").write_text('raise RuntimeError("boom")\n')
    seconds, error = bench.cold_start(tmp_path / "ok" / "app.py")
    assert isinstance(seconds, float) and error is None
    seconds, error = bench.cold_start(tmp_path / "bad" / "app.py")
    assert seconds is None and "boom" in error


@pytest.mark.parametrize("task", ["brain_tumor", "lgg"])
def test_synthetic_samples_are_readable(task):
    data, name = bench.synthetic_sample(task)
    stack = read_image(data, name)
    assert stack.slices.shape[1:3] == (256, 256)
    assert stack.is_color == (task == "lgg")
