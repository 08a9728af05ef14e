"""Speed and size of every model in the registry, and of the app's pipeline around them.

    python -m bench.run                     # a readable table
    python -m bench.run --json              # one JSON object on the last line
    python -m bench.run --repeats 50 --models brain_tumor_mri_sepnet --skip-cold-start

Every figure is taken in one run on one machine, next to a Keras MobileNetV2 built in the
same run: its latency is the yardstick (``ratio_to_reference``), so numbers from different
machines can be compared through the ratio even when the raw milliseconds cannot.
Latencies are medians after a warm-up: the median ignores the odd slow call (a GC pause, a
busy neighbour), and the warm-up keeps one-time tracing out of the figure.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's start-up chatter would bury the table

import numpy as np

from bench.harness import ROOT, emit, fmt, log, machine, peak_rss_mb
from mri_core import models

WARMUP = 3
BATCH = 32
REFERENCE_SHAPE = (224, 224, 3)
SAMPLES_DIR = ROOT / "samples"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".dcm", ".nii", ".gz")
COLD_START_TIMEOUT_S = 300

# Run in a fresh interpreter so that nothing this process has imported or loaded helps the app.
COLD_START_CHILD = """
import json, sys, time
try:
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(sys.argv[1], default_timeout=float(sys.argv[2]))
    at.run()
    done = time.time()
    errors = [e.value for e in at.exception]
    print(json.dumps({"returned_at": done, "error": ("app raised: " + "; ".join(errors)) if errors else None}))
except BaseException as e:
    print(json.dumps({"returned_at": None, "error": f"{type(e).__name__}: {e}"}))
"""



def median_ms(fn, repeats: int, warmup: int = WARMUP) -> float:
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def forward_ms(keras_model, shape: tuple[int, ...], repeats: int) -> float:
    """Single-image latency through the compiled predict path the app uses."""
    x = np.random.default_rng(0).random((1, *shape), dtype=np.float32)
    return median_ms(lambda: keras_model.predict_on_batch(x), repeats)


def throughput_ips(keras_model, shape: tuple[int, ...], repeats: int) -> float:
    """Images per second at batch 32 (the batch size of inference.run_model)."""
    x = np.random.default_rng(0).random((BATCH, *shape), dtype=np.float32)
    # A batch takes ~30x a single image: a few timed batches give a steady median.
    ms = median_ms(lambda: keras_model.predict_on_batch(x), max(3, repeats // 5), warmup=1)
    return BATCH / (ms / 1000.0)


def reference(repeats: int) -> dict:
    """MobileNetV2 (random weights: only the arithmetic matters) built in this run."""
    import keras

    net = keras.applications.MobileNetV2(weights=None, input_shape=REFERENCE_SHAPE)
    return {"name": "MobileNetV2", "latency_ms": forward_ms(net, REFERENCE_SHAPE, repeats), "params": int(net.count_params())}


def bench_model(name: str, repeats: int, ref_ms: float) -> tuple[models.LoadedModel, dict]:
    """Load one model (timed once: the app loads each model once per server) and time it."""
    t0 = time.perf_counter()
    loaded = models.load(name)
    load_s = time.perf_counter() - t0
    shape = loaded.card.preprocessing.input_shape
    latency = forward_ms(loaded.keras_model, shape, repeats)
    row = {
        "name": name,
        "task": loaded.task,
        "kind": loaded.kind,
        "latency_ms": latency,
        "ratio_to_reference": latency / ref_ms,
        "throughput_ips": throughput_ips(loaded.keras_model, shape, repeats),
        "load_s": load_s,
        "params": int(loaded.keras_model.count_params()),
        "file_mb": models.file_mb(name),
    }
    return loaded, row


# --------------------------------------------------------------------------- sample files


def synthetic_sample(task: str) -> tuple[bytes, str]:
    """Bytes of a made-up slice, for when the repo ships no sample for the task yet.

    Classifiers get a gray PNG of a phantom head (dark background, so the brain crop has
    work to do); LGG gets a 256x256 RGB JPEG, the layout of the LGG data set.
    """
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256]
    head = ((yy - 128) / 100) ** 2 + ((xx - 128) / 84) ** 2 <= 1
    img = np.where(head, 0.5, 0.0) + rng.normal(0, 0.02, (256, 256))
    img[(yy - 100) ** 2 + (xx - 145) ** 2 <= 20**2] = 0.9
    gray = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    buf = io.BytesIO()
    if task == "lgg":
        Image.fromarray(np.dstack([gray, (gray * 0.9).astype(np.uint8), gray])).save(buf, format="JPEG", quality=95)
        return buf.getvalue(), "synthetic_lgg.jpg"
    Image.fromarray(gray).save(buf, format="PNG")
    return buf.getvalue(), f"synthetic_{task}.png"


def sample_bytes(task: str) -> tuple[bytes, str, bool]:
    """(bytes, filename, bundled?) of the first sample under samples/<task>/, else a synthetic one.

    Searched recursively: classifier samples sit in class folders, LGG ones in patient folders
    next to their masks (which are skipped).
    """
    files = sorted(
        p for p in (SAMPLES_DIR / task).rglob("*")
        if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES) and "_mask" not in p.stem
    )
    if files:
        return files[0].read_bytes(), files[0].name, True
    data, name = synthetic_sample(task)
    return data, name, False


# --------------------------------------------------------------------------- pipeline


def pick(loaded: list[models.LoadedModel], task: str) -> models.LoadedModel | None:
    """The task's registry default if it was benchmarked, else the first benchmarked one."""
    mine = [m for m in loaded if m.task == task]
    if not mine:
        return None
    default = models.default_model(task)
    return next((m for m in mine if m.name == default), mine[0])


def pipeline(loaded: list[models.LoadedModel], repeats: int) -> dict:
    """The app's steps around the forward pass, each from the file's bytes as an upload gives them."""
    from mri_core import explain, inference
    from mri_core.io import read_image
    from mri_core.preprocess import prepare

    out = {"preprocess_ms": None, "gradcam_ms": None, "end_to_end_ms": None, "segment_end_to_end_ms": None, "samples": {}}
    bt = pick(loaded, "brain_tumor")
    if bt is not None:
        data, fname, bundled = sample_bytes("brain_tumor")
        out["samples"]["brain_tumor"] = {"file": fname, "bundled": bundled, "model": bt.name}
        pre = bt.preprocessing
        out["preprocess_ms"] = median_ms(lambda: prepare(read_image(data, fname).slice(0), pre), repeats)
        x = prepare(read_image(data, fname).slice(0), pre)
        # The warm-up also builds and caches Grad-CAM's probe model, as the app's first click would.
        out["gradcam_ms"] = median_ms(lambda: explain.gradcam(bt, x), repeats)

        def analyse():  # what the predict page computes for one slice: call, Grad-CAM picture, warnings
            stack = read_image(data, fname)
            inference.analyse_slice(bt, stack.slice(0), stack.modality)

        out["end_to_end_ms"] = median_ms(analyse, repeats)
    seg = pick(loaded, "lgg")
    if seg is not None:
        data, fname, bundled = sample_bytes("lgg")
        out["samples"]["lgg"] = {"file": fname, "bundled": bundled, "model": seg.name}
        out["segment_end_to_end_ms"] = median_ms(lambda: inference.segment(seg, [read_image(data, fname).slice(0)]), repeats)
    return out


def cold_start(app: Path = ROOT / "app.py", timeout: float = 120) -> tuple[float | None, str | None]:
    """Seconds from starting a fresh interpreter to AppTest's first run() returning, or (None, why)."""
    if not app.exists():
        return None, f"{app} does not exist"
    t0 = time.time()  # wall clock, not perf_counter: it is compared with the child's clock
    try:
        proc = subprocess.run(
            [sys.executable, "-c", COLD_START_CHILD, str(app.resolve()), str(timeout)],
            cwd=app.resolve().parent, capture_output=True, text=True, timeout=COLD_START_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return None, f"no first page within {COLD_START_TIMEOUT_S} s"
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return None, f"AppTest child exited with {proc.returncode}: {proc.stderr.strip()[-2000:]}"
    if result["error"] or result["returned_at"] is None:
        return None, result["error"]
    return result["returned_at"] - t0, None


# --------------------------------------------------------------------------- report


def print_table(r: dict) -> None:
    ref = r["reference"]
    print(f"MRI Insight benchmark  {r['date']}  {r['machine']['platform']}, {r['machine']['cpu_count']} CPUs, {r['repeats']} repeats")
    print(f"reference: {ref['name']} 224x224x3  {ref['latency_ms']:.1f} ms/image\n")
    head = f"{'model':<28} {'task':<12} {'kind':<10} {'ms/img':>8} {'x ref':>6} {'img/s@32':>9} {'load s':>7} {'params':>10} {'MB':>6}"
    print(head)
    print("-" * len(head))
    for m in r["models"]:
        print(
            f"{m['name']:<28} {m['task']:<12} {m['kind']:<10} {m['latency_ms']:>8.1f} {m['ratio_to_reference']:>6.2f} "
            f"{m['throughput_ips']:>9.1f} {m['load_s']:>7.2f} {m['params']:>10,} {m['file_mb']:>6.1f}"
        )
    if not r["models"]:
        print("(no trained models in the registry)")
    print()
    print(f"preprocess (read + prepare)        {fmt(r['preprocess_ms'], '.1f', ' ms')}")
    print(f"Grad-CAM                           {fmt(r['gradcam_ms'], '.1f', ' ms')}")
    print(f"bytes -> probabilities + Grad-CAM  {fmt(r['end_to_end_ms'], '.1f', ' ms')}")
    print(f"bytes -> LGG mask                  {fmt(r['segment_end_to_end_ms'], '.1f', ' ms')}")
    print(f"peak RSS, all models loaded        {fmt(r['peak_rss_mb'], '.0f', ' MB')}")
    print(f"app cold start to first page       {fmt(r['cold_start_s'], '.1f', ' s')}")
    if r.get("cold_start_error"):
        print(f"  cold start failed: {r['cold_start_error']}")
    for task, s in r["samples"].items():
        print(f"  {task} sample: {s['file']} ({'bundled' if s['bundled'] else 'synthetic'}), model {s['model']}")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    p.add_argument("--repeats", type=int, default=30, help="timed calls per median (default 30)")
    p.add_argument("--models", nargs="+", metavar="NAME", help="benchmark only these models")
    p.add_argument("--skip-cold-start", action="store_true", help="do not time the app's cold start")
    args = p.parse_args(argv)
    known = models.list_models()
    unknown = [n for n in args.models or [] if n not in known]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; known models: {', '.join(known) or 'none'}")
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    names = args.models or models.list_models()
    log(f"reference MobileNetV2, {args.repeats} repeats ...")
    ref = reference(args.repeats)
    loaded, rows = [], []
    for name in names:
        log(f"{name} ...")
        m, row = bench_model(name, args.repeats, ref["latency_ms"])
        loaded.append(m)
        rows.append(row)
    log("pipeline ...")
    result = {
        "reference": ref,
        "models": rows,
        **pipeline(loaded, args.repeats),
        "peak_rss_mb": peak_rss_mb(),  # every model is still referenced by `loaded` here
        "cold_start_s": None,
        "cold_start_error": None,
        "machine": machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "repeats": args.repeats,
        "models_dir": str(models.default_root()),
    }
    if args.skip_cold_start:
        result["cold_start_error"] = "skipped (--skip-cold-start)"
    else:
        log("app cold start ...")
        result["cold_start_s"], result["cold_start_error"] = cold_start()
    return emit(result, args.json, print_table)


if __name__ == "__main__":
    main()
