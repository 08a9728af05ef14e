"""Throughput of the Dask batch scorer next to the bare model's, and memory per worker.

    python -m bench.batch                          # brain_tumor's default model, 768 synthetic slices
    python -m bench.batch --task lgg --files 512 --workers 2 --json
    python -m bench.batch --input /data/study --task alzheimer

Why both numbers: ``predict_on_batch`` on a (32, H, W, C) array is the ceiling no pipeline can
beat; the batch command adds reading, cropping, TTA (4 views per slice for classifiers),
scheduling and writing. Their ratio says where the time goes and whether adding workers helps.
The batch command is timed twice on one LocalCluster: "cold" includes each worker importing
TensorFlow and loading the model; "warm" is the steady state a long run converges to. Memory is
each worker's own resident set (psutil in the worker), after the runs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from bench.harness import emit, log, machine
from bench.run import BATCH, synthetic_sample, throughput_ips
from mri_core import batch, models
from mri_core.tasks import TASKS

TTA_VIEWS = 4  # inference.classify sees every slice four times; segment sees it once


def write_synthetic(folder: Path, task: str, n: int) -> Path:
    """``n`` copies of bench/run.py's synthetic slice, each with its own noise so none is cached."""
    import io

    from PIL import Image

    data, name = synthetic_sample(task)
    base = np.asarray(Image.open(io.BytesIO(data)))
    rng = np.random.default_rng(0)
    suffix = Path(name).suffix
    for i in range(n):
        noisy = np.clip(base.astype(np.int16) + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"slice_{i:05d}{suffix}", quality=95)
    return folder


def bare_throughput(name: str, repeats: int) -> dict:
    """The model alone at batch 32, in this process, before the cluster competes for the CPU."""
    loaded = models.load(name)
    ips = throughput_ips(loaded.keras_model, loaded.card.preprocessing.input_shape, repeats)
    views = TTA_VIEWS if loaded.kind == "classifier" else 1
    return {"model": name, "kind": loaded.kind, "input_shape": list(loaded.card.preprocessing.input_shape),
            "images_per_s": ips, "views_per_slice": views, "slices_per_s_ceiling": ips / views}


def worker_memory() -> dict:
    """Runs in each worker: its resident memory now and at its peak, in MB."""
    import resource

    import psutil

    return {"rss_mb": psutil.Process().memory_info().rss / 2**20,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # KiB on Linux


def timed_run(folder: Path, out: Path, args, client) -> dict:
    s = batch.run(folder, args.task, out, model=args.model, client=client, batch_size=args.batch_size,
                  files_per_task=args.files_per_task, progress=False)
    if s.files_failed:
        raise SystemExit(f"{s.files_failed} files failed in the batch run: see the messages above")
    return {"seconds": s.seconds, "files": s.files_scored + s.files_unreadable, "slices": s.slices,
            "slices_per_s": s.slices_per_s}


def batch_throughput(folder: Path, args) -> dict:
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, memory_limit=args.memory_limit,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        start_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            log("batch run, cold (workers load the model) ...")
            cold = timed_run(folder, Path(tmp) / "cold.csv", args, client)
            log("batch run, warm ...")
            warm = timed_run(folder, Path(tmp) / "warm.csv", args, client)
        memory = client.run(worker_memory)
    per_worker = sorted(memory.values(), key=lambda m: -m["rss_mb"])
    return {"cluster_start_s": start_s, "cold": cold, "warm": warm, "workers": per_worker}


def print_table(r: dict) -> None:
    b, m = r["bare"], r["machine"]
    print(f"MRI Insight batch benchmark  {r['date']}  {m['cpu_count']} CPUs, {r['workers']} workers, "
          f"batch {r['batch_size']}, {r['files_per_task']} files/task")
    print(f"model {b['model']} ({b['kind']}, input {'x'.join(map(str, b['input_shape']))}), {r['slices']} slices from {r['input']}\n")
    rows = [
        (f"bare model, predict_on_batch({BATCH})", b["images_per_s"], "images/s, one process"),
        (f"bare ceiling (/{b['views_per_slice']} TTA views)", b["slices_per_s_ceiling"], "slices/s, one process"),
        ("batch command, cold", r["cold"]["slices_per_s"], f"slices/s ({r['cold']['seconds']:.1f} s, model loads included)"),
        ("batch command, warm", r["warm"]["slices_per_s"], f"slices/s ({r['warm']['seconds']:.1f} s)"),
    ]
    for label, value, unit in rows:
        print(f"{label:<36} {value:>9.1f}  {unit}")
    print(f"{'warm / bare ceiling':<36} {r['warm_to_ceiling']:>9.2f}  (reading, cropping, scheduling: {1 - r['warm_to_ceiling']:.0%} of the time)")
    print(f"{'warm / bare images per s':<36} {r['warm_to_bare']:>9.2f}  (at most 1/{b['views_per_slice']} while rows equal the app's)")
    print(f"{'LocalCluster start':<36} {r['cluster_start_s']:>9.1f}  s\n")
    for i, w in enumerate(r["memory_per_worker"]):
        print(f"worker {i}: {w['rss_mb']:.0f} MB resident, {w['peak_rss_mb']:.0f} MB peak")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="brain_tumor", choices=list(TASKS))
    p.add_argument("--model", help="model name (default: the task's default model)")
    p.add_argument("--input", type=Path, help="a folder of scans (default: --files synthetic slices)")
    p.add_argument("--files", type=int, default=768, help="synthetic slices to make (default 768)")
    p.add_argument("--workers", type=int, default=batch.DEFAULT_WORKERS)
    p.add_argument("--batch-size", type=int, default=batch.BATCH_SIZE)
    p.add_argument("--files-per-task", type=int, default=batch.FILES_PER_TASK)
    p.add_argument("--memory-limit", default="auto", help="per worker, e.g. 3GiB")
    p.add_argument("--repeats", type=int, default=60, help="behind the bare-model median: repeats // 5 timed batches (default 60)")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    args = p.parse_args(argv)
    if args.input is not None and not args.input.is_dir():
        p.error(f"{args.input} is not a folder")
    return args


def main(argv=None) -> dict:
    from datetime import datetime, timezone

    args = parse_args(argv)
    args.model = args.model or models.default_model(args.task)
    log(f"bare model {args.model} ...")
    bare = bare_throughput(args.model, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.input or write_synthetic(Path(tmp), args.task, args.files)
        timing = batch_throughput(folder, args)
    result = {
        "task": args.task, "input": str(args.input) if args.input else f"{args.files} synthetic files",
        "workers": args.workers, "batch_size": args.batch_size, "files_per_task": args.files_per_task,
        "bare": bare, "cold": timing["cold"], "warm": timing["warm"], "slices": timing["warm"]["slices"],
        "warm_to_ceiling": timing["warm"]["slices_per_s"] / bare["slices_per_s_ceiling"],
        "warm_to_bare": timing["warm"]["slices_per_s"] / bare["images_per_s"],
        "cluster_start_s": timing["cluster_start_s"], "memory_per_worker": timing["workers"],
        "machine": machine(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "models_dir": str(models.default_root()),
    }
    return emit(result, args.json, print_table)


if __name__ == "__main__":
    main()
