"""Score a whole folder of scans on a Dask cluster: ``python -m mri_core.batch INPUT --task TASK --out FILE``.

Why this exists: the app scores what one clinician uploads; a study archive holds thousands of
files. This command fans out the app's own path (``io.read_image`` -> ``rows.score_rows``: the
app's classify or segment, warnings and measurements) over Dask workers, so a row here equals
what the app and ``mri_core.evaluate`` give for the same slice, only faster, on one machine or
many. Its columns are ``mri_core.rows``'s, as in the predict page's CSV; the resumable writers
are in ``mri_core.batch_sinks``.

How it is split:

* this process (the client) lists the files, reads the model's card (TensorFlow is never
  imported here), submits chunks of file paths, and is the only writer of the output;
* each worker process loads the model once (a module-level cache, checked against the client's
  model file) and scores its chunks in batches of slices;
* rows are appended to the output as each chunk finishes, so a run that stops can be started
  again with the same ``--out``: files already in it are skipped.

Paths in the output are relative to INPUT, and nothing from DICOM headers is copied: the output
carries no patient identifiers beyond what file names themselves say.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # set before a worker first imports TensorFlow

from mri_core import models
from mri_core.batch_sinks import open_sink
from mri_core.rows import SliceItem, columns, error_row, items_of, score_rows, to_frame
from mri_core.tasks import TASKS

FILES_PER_TASK = 64  # files a Dask task reads: big enough to amortise scheduling, small enough to resume
TASKS_PER_WORKER = 4  # small folders are cut finer so that every worker gets work
BATCH_SIZE = 32  # slices per classify call, and the point at which whole files are segmented: bounds a worker's memory
DEFAULT_WORKERS = 2


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to load the same model as the client, and to prove it did."""

    name: str
    task: str
    kind: str  # "classifier" or "segmenter"
    class_names: tuple[str, ...]
    models_dir: str  # the client's registry; a worker without it falls back to its own
    sha256: str  # of model.keras: workers on other machines must hold the very same file


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_model(task: str, name: str | None, models_dir: Path) -> ModelSpec:
    """The model to use, from its card only (no TensorFlow in the client); refuse a wrong task."""
    try:
        name = name or models.default_model(task, models_dir)
        card = models.read_card(name, models_dir)
    except ValueError as exc:  # no such model, or none trained yet: a message, not a traceback
        raise SystemExit(str(exc)) from None
    if card.task != task:
        raise SystemExit(f"model {name} is for task {card.task}, not {task}")
    path = models.model_dir(name, models_dir) / models.MODEL_FILE
    return ModelSpec(name, task, card.kind, card.class_names, str(models_dir), file_sha256(path))


# One loaded model per worker process, shared by its threads and all its tasks: loading and
# warming a Keras model costs seconds, scoring a chunk often less.
_MODELS: dict[tuple[str, str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def worker_model(spec: ModelSpec, workers_per_host: dict[str, int] | None = None):
    key = (spec.models_dir, spec.name, spec.sha256)
    with _MODELS_LOCK:
        if key not in _MODELS:
            if not _MODELS:
                share_cores(workers_per_host or {})
            _MODELS[key] = _load_checked(spec)
        return _MODELS[key]


def tf_threads(cpu_count: int, workers_on_host: int) -> int:
    return max(1, cpu_count // max(1, workers_on_host))


def share_cores(workers_per_host: dict[str, int]) -> int | None:
    """Give this worker's TensorFlow its share of the machine's cores, before TensorFlow starts.

    By default every worker's TensorFlow sizes its thread pools to all the cores, so k workers
    on one machine run k times too many threads (docs/batch.md has the measurement). Returns the
    thread count set, or None outside a Dask worker or once TensorFlow has already started.
    """
    from distributed import get_worker
    from distributed.comm import get_address_host

    try:
        host = get_address_host(get_worker().address)
    except ValueError:  # score_chunk called directly (tests, a debugger): keep TensorFlow's defaults
        return None
    n = tf_threads(os.cpu_count() or 1, workers_per_host.get(host, 1))
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # TensorFlow already initialised in this process: its pools are fixed
        return None
    return n


def _load_checked(spec: ModelSpec):
    """Load from the client's registry path, or this machine's own; the file must be the client's."""
    root = Path(spec.models_dir)
    if not (models.model_dir(spec.name, root) / models.MODEL_FILE).exists():
        root = models.default_root()  # a remote worker: the repo (and models/) sit elsewhere there
    path = models.model_dir(spec.name, root) / models.MODEL_FILE
    if not path.exists() or file_sha256(path) != spec.sha256:
        raise RuntimeError(
            f"worker {socket.gethostname()} has no copy of model {spec.name} identical to the client's "
            f"(looked in {root}); copy the same models/ folder to every machine"
        )
    return models.load(spec.name, root)


# --------------------------------------------------------------------------- scoring


def read_stack(abs_path: str):
    """The file through exactly the app's reader; raise UnreadableImage with a plain reason."""
    from mri_core.io import UnreadableImage, read_image

    try:
        data = Path(abs_path).read_bytes()
    except OSError as exc:  # strerror only: the exception's text would carry the absolute path
        raise UnreadableImage(f"The file could not be opened ({exc.strerror or type(exc).__name__}).") from None
    return read_image(data, Path(abs_path).name)


def score_chunk(files: list[tuple[str, str]], spec: ModelSpec, batch_size: int = BATCH_SIZE,
                workers_per_host: dict[str, int] | None = None) -> list[dict]:
    """Runs on a worker: (absolute, relative) paths -> one row per slice (``rows.score_rows``), or one
    error row per file."""
    loaded = worker_model(spec, workers_per_host)
    rows: list[dict] = []
    pending: list[SliceItem] = []
    for abs_path, rel in files:
        stack = _read_or_error_row(abs_path, rel, spec, rows)
        if stack is None:
            continue
        pending.extend(items_of(stack, rel))
        if spec.kind == "segmenter" and len(pending) >= batch_size:
            rows.extend(score_rows(loaded, pending))  # whole files: a volume is not split
            pending = []
        while len(pending) >= batch_size:
            rows.extend(score_rows(loaded, pending[:batch_size]))
            pending = pending[batch_size:]
    if pending:
        rows.extend(score_rows(loaded, pending))
    order = {rel: i for i, (_, rel) in enumerate(files)}
    return sorted(rows, key=lambda r: (order[r["path"]], r.get("slice", -1)))


def _read_or_error_row(abs_path: str, rel: str, spec: ModelSpec, rows: list[dict]):
    """The file's stack, or None after appending its error row to ``rows``."""
    from mri_core.io import UnreadableImage

    try:
        return read_stack(abs_path)
    except UnreadableImage as exc:
        reason = str(exc)
    except Exception as exc:  # a reader bug on one odd file must not lose the other 63
        reason = f"The file could not be read ({type(exc).__name__}: {exc})."
    rows.append(error_row(rel, spec.task, spec.name, reason))
    return None


# --------------------------------------------------------------------------- files and chunks


def list_inputs(root: Path, exclude: list[Path] = ()) -> list[tuple[str, str]]:
    """(absolute, relative posix) paths of every file under ``root``, sorted.

    Every file is tried, whatever its extension (DICOM files often have none), so that a file
    the readers refuse shows up as an error row. Hidden files and folders (.DS_Store, .git) are
    operating-system or tool litter, not scans, and are left out; so is the output itself.
    """
    skip = {p.resolve() for p in exclude}
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in skip)
        for name in sorted(filenames):
            p = here / name
            if name.startswith(".") or p.resolve() in skip or not p.is_file():
                continue
            found.append((str(p.resolve()), p.relative_to(root).as_posix()))
    return found


def chunk_size(n_files: int, n_workers: int, files_per_task: int) -> int:
    """Up to ``files_per_task``, but cut finer when that would leave workers idle."""
    fair = math.ceil(n_files / max(1, n_workers * TASKS_PER_WORKER))
    return max(1, min(files_per_task, fair))


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# --------------------------------------------------------------------------- the run


@dataclass
class Summary:
    files_found: int
    files_skipped: int  # already in --out from an earlier run
    files_scored: int  # read and predicted in this run
    files_unreadable: int  # given an error row in this run
    files_failed: int  # in chunks that failed (worker lost, model mismatch): retried by a rerun
    slices: int
    seconds: float
    out: str

    @property
    def slices_per_s(self) -> float:
        return self.slices / self.seconds if self.seconds > 0 else 0.0


@contextmanager
def connect(client=None, scheduler: str | None = None, workers: int = DEFAULT_WORKERS, memory_limit: str = "auto") -> Iterator:
    """A Dask client: the one given, one on an existing scheduler, or one on a LocalCluster here."""
    from distributed import Client, LocalCluster

    if client is not None:
        yield client
    elif scheduler:
        with Client(scheduler) as c:
            yield c
    else:
        # Processes, one thread each: the readers and the crop are Python holding the GIL, so
        # threads in one process would take turns; each process has its own model instead.
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                          dashboard_address=":0") as cluster, Client(cluster) as c:
            yield c


def workers_by_host(client) -> dict[str, int]:
    """How many worker processes share each machine of the cluster."""
    from collections import Counter

    return dict(Counter(w["host"] for w in client.scheduler_info()["workers"].values()))


def score_all(client, todo: list[tuple[str, str]], spec: ModelSpec, sink, batch_size: int, files_per_task: int,
              progress: bool | None) -> tuple[int, int, int, int]:
    """Submit every chunk, write each as it completes; (scored, unreadable, failed, slices)."""
    from distributed import as_completed
    from tqdm import tqdm

    size = chunk_size(len(todo), sum(client.nthreads().values()), files_per_task)
    parts = chunks(todo, size)
    workers_per_host = workers_by_host(client)
    futures = [client.submit(score_chunk, part, spec, batch_size, workers_per_host, pure=False) for part in parts]
    n_files = {f.key: len(p) for f, p in zip(futures, parts)}
    scored = unreadable = failed = slices = 0
    columns = sink.columns
    with tqdm(total=len(todo), unit="file", desc="scoring", disable=None if progress is None else not progress) as bar:
        completed = as_completed(futures)
        del futures  # as_completed holds each future until it is yielded; then its result can go
        for future in completed:
            n = n_files[future.key]
            try:
                rows = future.result()
            except Exception as exc:  # the whole chunk: nothing is written, so a rerun retries it
                failed += n
                bar.write(f"a chunk of {n} files failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            else:
                sink.append(to_frame(rows, columns))
                errors = sum(1 for r in rows if r.get("error"))
                unreadable += errors
                scored += n - errors
                slices += len(rows) - errors
            bar.update(n)
            future.release()
    return scored, unreadable, failed, slices


def run(input_dir: Path, task: str, out: Path, *, model: str | None = None, client=None, scheduler: str | None = None,
        workers: int = DEFAULT_WORKERS, batch_size: int = BATCH_SIZE, files_per_task: int = FILES_PER_TASK,
        models_dir: Path | None = None, memory_limit: str = "auto", progress: bool | None = None) -> Summary:
    """Score every file under ``input_dir`` into ``out``, skipping files ``out`` already holds."""
    t0 = time.perf_counter()
    input_dir, out = Path(input_dir).resolve(), Path(out).resolve()
    models_dir = Path(models_dir or models.default_root()).resolve()
    spec = resolve_model(task, model, models_dir)
    sink = open_sink(out, columns(spec.class_names))
    done = sink.load_done(spec)
    found = list_inputs(input_dir, exclude=sink.owned_paths() + [Path(str(out) + ".tmp")])
    todo = [f for f in found if f[1] not in done]
    scored = unreadable = failed = slices = 0
    if todo:  # a finished run resumed does not even start a cluster
        with connect(client, scheduler, workers, memory_limit) as c:
            scored, unreadable, failed, slices = score_all(c, todo, spec, sink, batch_size, files_per_task, progress)
    if not failed:
        sink.finish()  # Parquet: parts stay while some chunk is still to be retried
    return Summary(len(found), len(found) - len(todo), scored, unreadable, failed, slices, time.perf_counter() - t0, str(out))


def report(s: Summary) -> str:
    line = (f"{s.files_found} files: {s.files_scored} scored ({s.slices} slices), {s.files_unreadable} unreadable, "
            f"{s.files_skipped} skipped (already in {Path(s.out).name})")
    if s.files_failed:
        line += f", {s.files_failed} failed (run again to retry them)"
    return line + f"; {s.seconds:.1f} s, {s.slices_per_s:.1f} slices/s -> {s.out}"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mri_core.batch",
                                description="Score every scan in a folder on a Dask cluster; one row per slice, resumable.")
    p.add_argument("input", type=Path, metavar="INPUT", help="folder of scans, read recursively")
    p.add_argument("--task", required=True, choices=list(TASKS))
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="results: .csv, or .parquet; an existing file is resumed")
    p.add_argument("--model", metavar="NAME", help="model name under models/ (default: the task's default model)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="address of a running Dask scheduler, e.g. tcp://host:8786 (default: a local cluster)")
    p.add_argument("--workers", type=int, metavar="N", default=DEFAULT_WORKERS, help=f"local worker processes (default {DEFAULT_WORKERS}; ignored with --scheduler)")
    p.add_argument("--batch-size", type=int, metavar="N", default=BATCH_SIZE, help=f"slices per prediction call (default {BATCH_SIZE})")
    p.add_argument("--files-per-task", type=int, metavar="N", default=FILES_PER_TASK, help=f"files per Dask task (default {FILES_PER_TASK})")
    p.add_argument("--memory-limit", default="auto", metavar="SIZE", help="per local worker, e.g. 3GiB (default: RAM / workers)")
    p.add_argument("--models-dir", type=Path, metavar="DIR", help="model registry (default: $MRI_MODELS_DIR or models/)")
    args = p.parse_args(argv)
    if not args.input.is_dir():
        p.error(f"{args.input} is not a folder")
    for name in ("workers", "batch_size", "files_per_task"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    summary = run(args.input, args.task, args.out, model=args.model, scheduler=args.scheduler, workers=args.workers,
                  batch_size=args.batch_size, files_per_task=args.files_per_task, models_dir=args.models_dir,
                  memory_limit=args.memory_limit)
    print(report(summary), file=sys.stderr)
    return 1 if summary.files_failed else 0


if __name__ == "__main__":
    # Run through the package module, not __main__: Dask pickles score_chunk by reference, and
    # workers must find it (and its model cache) as mri_core.batch.
    from mri_core import batch

    sys.exit(batch.main())
