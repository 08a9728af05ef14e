"""bench.harness: the probes the benchmarks and browser tests share, and the benchmarks run as modules."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench import harness

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("module", ["bench.run", "bench.load", "bench.batch"])
def test_benchmarks_run_as_modules_from_the_root(module):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as a user types it, nothing on the path
    out = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage:" in out.stdout


def test_no_benchmark_edits_the_import_path():
    for path in (ROOT / "bench").glob("*.py"):
        assert "sys.path" not in path.read_text(), path.name


def test_rounded_keeps_structure_and_types():
    assert harness.rounded({"a": [1.23456, 2], "b": "x", "c": {"d": 0.5555}}, 2) == {"a": [1.23, 2], "b": "x", "c": {"d": 0.56}}


def test_fmt_says_n_a_for_a_missing_figure():
    assert harness.fmt(None, ".1f", " ms") == "n/a"
    assert harness.fmt(1.25, ".1f", " ms") == "1.2 ms"


def test_free_port_is_bindable():
    port = harness.free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))


def test_memory_watch_reads_this_process_and_keeps_a_peak():
    with harness.MemoryWatch(os.getpid()) as watch:
        first = watch.now()
        block = bytearray(64 * 2**20)  # a peak to see
        block[::4096] = b"x" * len(block[::4096])
    assert first is not None and first > 0
    assert watch.peak >= first
    assert harness.MemoryWatch(None).now() is None


def test_machine_names_the_stack():
    m = harness.machine()
    assert m["cpu_count"] >= 1 and m["tensorflow"] and m["keras"]
