"""The batch scorer's resumable writers: a CSV appended chunk by chunk, or Parquet parts joined at the end.

A run that stops can be started again with the same output: ``load_done`` reads what is there,
repairs a write cut off by a crash, refuses another task's or model's results (``check_same_run``)
and says which files are finished (``finished_paths``), so only the rest is scored.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mri_core.rows import BOOL_COLUMNS, INT_COLUMNS, STR_COLUMNS

if TYPE_CHECKING:
    from mri_core.batch import ModelSpec


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
