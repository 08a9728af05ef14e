"""Score a whole folder of scans on a Dask cluster: ``python -m mri_core.batch INPUT --task TASK --out FILE``.

Why this exists: the app scores what one clinician uploads; a study archive holds thousands of
files. This command fans out the app's own path (``io.read_image`` -> ``inference.classify`` /
``inference.segment`` -> ``measure``) over Dask workers, so a row here equals what the app and
``mri_core.evaluate`` give for the same slice, only faster, on one machine or many.

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
import io
import itertools
import math
import os
import re
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # set before a worker first imports TensorFlow

import numpy as np

from mri_core import models
from mri_core.tasks import TASKS

FILES_PER_TASK = 64  # files a Dask task reads: big enough to amortise scheduling, small enough to resume
TASKS_PER_WORKER = 4  # small folders are cut finer so that every worker gets work
BATCH_SIZE = 32  # slices per classify call, and the point at which whole files are segmented: bounds a worker's memory
DEFAULT_WORKERS = 2

BASE_COLUMNS = ["path", "slice", "n_slices", "task", "model", "prediction", "confidence", "uncertainty", "reliable", "reason"]
LGG_COLUMNS = ["tumor_probability", "area_px", "area_mm2"]
INT_COLUMNS = {"slice", "n_slices", "area_px"}
BOOL_COLUMNS = {"reliable"}  # False: the app abstains on this slice (``reason`` says why)
STR_COLUMNS = {"path", "task", "model", "prediction", "reason", "error"}


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
    if card["task"] != task:
        raise SystemExit(f"model {name} is for task {card['task']}, not {task}")
    path = models.model_dir(name, models_dir) / models.MODEL_FILE
    return ModelSpec(name, task, card["kind"], tuple(card["class_names"]), str(models_dir), file_sha256(path))


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
    on one machine run k times too many threads. Measured with 2 workers on 2 cores: one
    thread each scored 5 % more slices per second and held 100 MB less per worker. Returns the
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
        root = models.MODELS_DIR  # a remote worker: the repo (and models/) sit elsewhere there
    path = models.model_dir(spec.name, root) / models.MODEL_FILE
    if not path.exists() or file_sha256(path) != spec.sha256:
        raise RuntimeError(
            f"worker {socket.gethostname()} has no copy of model {spec.name} identical to the client's "
            f"(looked in {root}); copy the same models/ folder to every machine"
        )
    return models.load(spec.name, root)


# --------------------------------------------------------------------------- rows


def prob_column(class_name: str) -> str:
    return "p_" + re.sub(r"\W+", "_", class_name).strip("_")  # "no tumor" -> p_no_tumor


def output_columns(spec: ModelSpec) -> list[str]:
    cols = BASE_COLUMNS + [prob_column(c) for c in spec.class_names]
    if spec.kind == "segmenter":
        cols += LGG_COLUMNS
    return cols + ["error"]


def error_row(rel: str, spec: ModelSpec, reason: str) -> dict:
    return {"path": rel, "task": spec.task, "model": spec.name, "error": reason}


def classifier_rows(spec: ModelSpec, items: list[tuple], preds) -> list[dict]:
    rows = []
    for (rel, k, n, *_), p in zip(items, preds):
        row = {"path": rel, "slice": k, "n_slices": n, "task": spec.task, "model": spec.name,
               "prediction": p.label, "confidence": p.confidence, "uncertainty": p.uncertainty,
               "reliable": p.reliable, "reason": p.reason}
        row.update({prob_column(c): float(v) for c, v in zip(p.class_names, p.probs)})
        rows.append(row)
    return rows


def segmenter_rows(spec: ModelSpec, items: list[tuple], preds) -> list[dict]:
    from mri_core.measure import measure

    rows = []
    for (rel, k, n, _, spacing, *_), s in zip(items, preds):
        m = measure(s.mask, spacing)
        tp = float(s.tumor_probability)
        # The app's wording: "tumor" when the slice's tumour probability reaches 0.5.
        row = {"path": rel, "slice": k, "n_slices": n, "task": spec.task, "model": spec.name,
               "prediction": "tumor" if s.present else "no tumor", "confidence": tp if s.present else 1.0 - tp,
               "uncertainty": np.nan, "reliable": True, "reason": "", "tumor_probability": tp, "area_px": m.area_px,
               "area_mm2": np.nan if m.area_mm2 is None else m.area_mm2}
        probs = {"no tumor": 1.0 - tp, "tumor": tp}
        row.update({prob_column(c): probs.get(c, np.nan) for c in spec.class_names})
        rows.append(row)
    return rows


def predict_rows(loaded, spec: ModelSpec, items: list[tuple]) -> list[dict]:
    """Rows for (rel, slice, n_slices, image, spacing, modality) items, through the app's inference calls."""
    from mri_core import inference

    if spec.kind == "classifier":  # each file's modality can rule its calls out
        return classifier_rows(spec, items, inference.classify(loaded, [it[3] for it in items],
                                                               modality=[it[5] for it in items]))
    # Each file's slices are one volume, as on the mask page: items hold whole files here.
    preds = []
    for _, group in itertools.groupby(items, key=lambda it: it[0]):
        preds.extend(inference.segment(loaded, [it[3] for it in group], volume=True))
    return segmenter_rows(spec, items, preds)


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
    """Runs on a worker: (absolute, relative) paths -> one row per slice, or one error row per file."""
    from mri_core.io import UnreadableImage

    loaded = worker_model(spec, workers_per_host)
    rows: list[dict] = []
    pending: list[tuple] = []
    for abs_path, rel in files:
        try:
            stack = read_stack(abs_path)
        except UnreadableImage as exc:
            rows.append(error_row(rel, spec, str(exc)))
            continue
        except Exception as exc:  # a reader bug on one odd file must not lose the other 63
            rows.append(error_row(rel, spec, f"The file could not be read ({type(exc).__name__}: {exc})."))
            continue
        n = stack.n_slices
        pending.extend((rel, k, n, stack.slices[k], stack.spacing_mm, stack.modality) for k in range(n))
        if spec.kind == "segmenter" and len(pending) >= batch_size:
            rows.extend(predict_rows(loaded, spec, pending))  # whole files: a volume is not split
            pending = []
        while len(pending) >= batch_size:
            rows.extend(predict_rows(loaded, spec, pending[:batch_size]))
            pending = pending[batch_size:]
    if pending:
        rows.extend(predict_rows(loaded, spec, pending))
    order = {rel: i for i, (_, rel) in enumerate(files)}
    return sorted(rows, key=lambda r: (order[r["path"]], r.get("slice", -1)))


# --------------------------------------------------------------------------- output


def to_frame(rows: list[dict], columns: list[str]):
    """Rows in the output's column order and types (nullable ints, so error rows stay ints)."""
    import pandas as pd

    df = pd.DataFrame(rows).reindex(columns=columns)
    for c in columns:
        if c in INT_COLUMNS:
            df[c] = df[c].astype("Int64")
        elif c in BOOL_COLUMNS:
            df[c] = df[c].astype("boolean")
        elif c in STR_COLUMNS:
            df[c] = df[c].astype(object).where(df[c].notna(), None)
        else:
            df[c] = df[c].astype("float64")
    return df


def finished_paths(df) -> set[str]:
    """Files whose rows are all there: an error row, or as many rows as the file has slices.

    Chunks are appended whole, so only a crash in the middle of a write can leave a file with
    some of its slices; such a file is not finished and is scored again.
    """
    if len(df) == 0:
        return set()
    import pandas as pd

    errors = df["error"].fillna("").astype(str).str.len() > 0
    ok = df.loc[~errors]
    counts = ok.groupby("path").agg(rows=("path", "size"), n=("n_slices", "first"))
    complete = pd.to_numeric(counts["n"], errors="coerce") == counts["rows"]
    return set(df.loc[errors, "path"]) | set(counts.index[complete])


def check_same_run(df, spec: ModelSpec, out: Path) -> None:
    """Refuse to mix two models' results in one file: a resumed run must be the same run."""
    if len(df) == 0:
        return
    tasks, names = set(df["task"].astype(str)), set(df["model"].astype(str))
    if tasks != {spec.task} or names != {spec.name}:
        raise SystemExit(
            f"{out} already holds results of task {sorted(tasks)} / model {sorted(names)}; "
            f"this run is {spec.task} / {spec.name}. Choose another --out."
        )


class CsvSink:
    """Append one chunk at a time to a CSV; on resume, repair a torn tail and skip finished files."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = path, columns

    def owned_paths(self) -> list[Path]:
        return [self.path]

    def load_done(self, spec: ModelSpec) -> set[str]:
        import pandas as pd

        if not self.path.exists():
            return set()
        raw = self.path.read_bytes()
        whole = raw[: raw.rfind(b"\n") + 1]  # a write cut off by a crash leaves a torn last line
        if not whole:
            self.path.unlink()  # not even a whole header: nothing was written
            return set()
        header = whole.split(b"\n", 1)[0].decode().strip().split(",")
        if header != self.columns:
            raise SystemExit(f"{self.path} has other columns than this run writes ({spec.task} / {spec.name}). Choose another --out.")
        # Everything as text, so that a repair rewrites the kept rows exactly as they were.
        df = pd.read_csv(io.BytesIO(whole), dtype=str, keep_default_na=False)
        check_same_run(df, spec, self.path)
        done = finished_paths(df)
        keep = df["path"].isin(done)
        if len(whole) != len(raw) or not keep.all():
            self._rewrite(df[keep])  # drop the torn line and any file it left half-written
        return done

    def _rewrite(self, df) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        df.to_csv(tmp, index=False)
        os.replace(tmp, self.path)

    def append(self, frame) -> None:
        header = not self.path.exists() or self.path.stat().st_size == 0
        text = frame.to_csv(index=False, header=header)
        # One write per chunk, flushed to disk: a crash loses at most the chunk being written.
        with open(self.path, "a", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def finish(self) -> None:
        pass


class ParquetSink:
    """One Parquet part per chunk in FILE.parts/ (each written whole, then renamed), joined at the end."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = path, columns
        self.parts = Path(str(path) + ".parts")
        self._count = 0

    def owned_paths(self) -> list[Path]:
        return [self.path, self.parts]

    def schema(self):
        import pyarrow as pa

        def kind(c):
            if c in BOOL_COLUMNS:
                return pa.bool_()
            return pa.int64() if c in INT_COLUMNS else pa.string() if c in STR_COLUMNS else pa.float64()

        return pa.schema([(c, kind(c)) for c in self.columns])

    def _existing(self):
        import pandas as pd

        files = ([self.path] if self.path.exists() else []) + sorted(self.parts.glob("*.parquet"))
        frames = [pd.read_parquet(f) for f in files]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=self.columns)

    def load_done(self, spec: ModelSpec) -> set[str]:
        df = self._existing()
        if len(df) and list(df.columns) != self.columns:
            raise SystemExit(f"{self.path} has other columns than this run writes ({spec.task} / {spec.name}). Choose another --out.")
        check_same_run(df, spec, self.path)
        return finished_paths(df)

    def append(self, frame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.parts.mkdir(parents=True, exist_ok=True)
        self._count += 1
        name = f"part-{time.time_ns()}-{os.getpid()}-{self._count:06d}.parquet"
        tmp = self.parts / (name + ".tmp")  # not *.parquet: a half-written part is never read
        pq.write_table(pa.Table.from_pandas(frame, schema=self.schema(), preserve_index=False), tmp)
        os.replace(tmp, self.parts / name)

    def finish(self) -> None:
        """Fold the parts into FILE (sorted, de-duplicated), then remove them."""
        import shutil

        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.parts.is_dir():
            return
        df = self._existing()
        # A crash between writing FILE and removing the parts would otherwise count rows twice.
        df = df.drop_duplicates(subset=["path", "slice"], keep="first")
        df = df.sort_values(["path", "slice"], na_position="first", kind="stable").reset_index(drop=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        pq.write_table(pa.Table.from_pandas(df, schema=self.schema(), preserve_index=False), tmp)
        os.replace(tmp, self.path)
        shutil.rmtree(self.parts)


def open_sink(out: Path, columns: list[str]):
    return ParquetSink(out, columns) if out.name.lower().endswith(".parquet") else CsvSink(out, columns)


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
    models_dir = Path(models_dir or models.MODELS_DIR).resolve()
    spec = resolve_model(task, model, models_dir)
    sink = open_sink(out, output_columns(spec))
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
