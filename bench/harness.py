"""What the benchmarks and the browser tests share: a ``streamlit run`` server on localhost, Debian's
Chromium driven by Playwright, the page probes that say when a prediction is shown, and the
memory and machine probes.

Run the benchmarks as modules from the project root (``python -m bench.run``, ``python -m
bench.load``, ``python -m bench.batch``); the tests import this module.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mri_core.models import ROOT_ENV

ROOT = Path(__file__).resolve().parent.parent

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1280, "height": 1600}
PREDICT_PATH = "/predict"
UPLOAD_INPUT = '.st-key-predict_upload input[type="file"]'
SERVER_START_TIMEOUT_S = 180
WAIT_MS = 120_000  # one page load or one prediction, on 2 busy cores
MEMORY_SAMPLE_S = 0.2

# The prediction shown for upload `name`, once the rerun that shows it has finished: the subheader
# names the file, no element is stale, the Grad-CAM caption and the Prediction metric are there.
# Returns null until then. Any error alert or exception on the page is returned too.
RESULT_JS = """
(name) => {
  const errors = [...document.querySelectorAll(
      '[data-testid="stAlertContentError"], [data-testid="stException"]')].map(e => e.innerText.trim());
  if (errors.length) return {prediction: null, errors};
  if (document.querySelector('[data-stale="true"]')) return null;
  if (document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')) return null;
  const heads = [...document.querySelectorAll('h3')].map(h => h.innerText.trim());
  if (!heads.includes(name)) return null;
  const captions = [...document.querySelectorAll('[data-testid="stImageCaption"]')].map(c => c.innerText);
  if (!captions.some(c => c.startsWith('Grad-CAM for'))) return null;
  const metric = [...document.querySelectorAll('[data-testid="stMetric"]')].find(
      m => (m.querySelector('[data-testid="stMetricLabel"]')?.innerText || '').trim() === 'Prediction');
  if (!metric) return null;
  return {prediction: metric.querySelector('[data-testid="stMetricValue"]').innerText.trim(), errors: []};
}
"""
# The rerun after removing the uploads `names` has finished: none of them is the subheader any
# more (the bundled sample is), nothing is stale and the script is not running.
IDLE_WITHOUT_JS = """
(names) => {
  if (document.querySelector('[data-stale="true"]')) return false;
  if (document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')) return false;
  const heads = [...document.querySelectorAll('h3')].map(h => h.innerText.trim());
  return heads.length > 0 && !heads.some(h => names.includes(h));
}
"""
# The predict page's first run has finished (the bundled sample's prediction is shown).
READY_JS = """
() => {
  if (document.querySelector('[data-stale="true"]')) return false;
  if (document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')) return false;
  if (!document.querySelector('h3')) return false;
  return [...document.querySelectorAll('[data-testid="stMetricLabel"]')].some(l => l.innerText.trim() === 'Prediction');
}
"""
# The home page has finished its first run.
HOME_READY_JS = """
() => !document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')
      && [...document.querySelectorAll('h1')].some(h => h.innerText.includes('MRI Insight'))
      && !!document.querySelector('[data-testid="stAlertContentWarning"]')
"""
ERRORS_JS = """
() => [...document.querySelectorAll('[data-testid="stAlertContentError"], [data-testid="stException"]')]
        .map(e => e.innerText.trim())
"""




def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)  # stdout is kept for the result


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    pid: int
    log_path: Path


@contextmanager
def serve(models_dir: Path | str, port: int | None = None, timeout_s: float = SERVER_START_TIMEOUT_S,
          args: tuple[str, ...] = (), env_extra: dict[str, str] | None = None):
    """``streamlit run app.py`` on localhost with ``MRI_MODELS_DIR=models_dir`` (and ``args`` after
    the defaults, e.g. ``--secrets.files``); stopped on exit."""
    port = port or free_port()
    env = {**os.environ, **(env_extra or {})}
    env[ROOT_ENV] = str(models_dir)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
           "--server.headless", "true", "--server.address", "localhost",
           "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false", *args]
    log_file = tempfile.NamedTemporaryFile("w+b", prefix="mri-streamlit-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}: {_tail(log_file.name)}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit not healthy after {timeout_s:.0f} s: {_tail(log_file.name)}")
            time.sleep(0.5)
        yield Server(url, proc.pid, Path(log_file.name))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
        log_file.close()


def _tail(path: str, n: int = 3000) -> str:
    return Path(path).read_bytes()[-n:].decode(errors="replace")


def launch_options() -> dict:
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


# --------------------------------------------------------------------------- memory


class MemoryWatch:
    """Resident set of one process in MB, sampled in a thread for the peak."""

    def __init__(self, pid: int | None):
        import psutil

        self.proc = psutil.Process(pid) if pid else None
        self.peak = self.now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def now(self) -> float | None:
        if self.proc is None:
            return None
        try:
            return self.proc.memory_info().rss / 2**20
        except Exception:  # the process went away: no figure rather than a crash
            return None

    def _loop(self) -> None:
        while not self._stop.wait(MEMORY_SAMPLE_S):
            v = self.now()
            if v is not None and (self.peak is None or v > self.peak):
                self.peak = v

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        v = self.now()
        if v is not None and (self.peak is None or v > self.peak):
            self.peak = v


def server_pid_for(url: str) -> int | None:
    """The pid listening on the url's port (for a server this module did not start)."""
    import psutil
    from urllib.parse import urlparse

    port = urlparse(url).port
    try:
        for c in psutil.net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
                return c.pid
    except psutil.AccessDenied:
        pass
    return None


# --------------------------------------------------------------------------- one browser session


async def open_predict(context, url: str):
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    await page.goto(url.rstrip("/") + PREDICT_PATH, timeout=WAIT_MS)
    await page.locator(UPLOAD_INPUT).wait_for(state="attached", timeout=WAIT_MS)
    return page


async def remove_uploads(page, limit: int = 20) -> None:
    """Delete every file in the uploader (it keeps earlier ones; a request is one file), then
    wait for the rerun that follows: the page is back on the bundled sample, nothing stale."""
    chips = page.locator('[data-testid="stFileChipDeleteBtn"] button')
    names = await page.locator('[data-testid="stFileChipName"]').all_inner_texts()
    if not names:
        return
    for _ in range(limit):
        n = await chips.count()
        if not n:
            break
        await chips.first.click()
        await page.wait_for_function(
            "n => document.querySelectorAll('[data-testid=\"stFileChipDeleteBtn\"] button').length < n",
            arg=n, timeout=WAIT_MS)
    else:
        raise RuntimeError(f"the uploader still holds files after {limit} deletions")
    await page.wait_for_function(IDLE_WITHOUT_JS, arg=[n.strip() for n in names], timeout=WAIT_MS, polling=100)


async def upload_and_predict(page, path: Path, name: str) -> tuple[float, str | None, list[str]]:
    """Upload ``path`` as ``name`` on the predict page; (latency in s, predicted class, error texts)."""
    await remove_uploads(page)
    # The name after the JPEG's end marker: decoders ignore it, and the bytes (so the content hash
    # the app caches results by) are new for every request, as a new patient's scan would be.
    data = path.read_bytes() + b"\n" + name.encode()
    t0 = time.perf_counter()
    await page.locator(UPLOAD_INPUT).set_input_files({"name": name, "mimeType": "image/jpeg", "buffer": data})
    handle = await page.wait_for_function(RESULT_JS, arg=name, timeout=WAIT_MS, polling=100)
    latency = time.perf_counter() - t0
    result = await handle.json_value()
    return latency, result["prediction"], result["errors"]


async def wait_ready(page, timeout_ms: int = WAIT_MS) -> None:
    """The predict page has finished its first run: the bundled sample's prediction is shown."""
    await page.wait_for_function(READY_JS, timeout=timeout_ms, polling=100)


async def page_errors(page) -> list[str]:
    return await page.evaluate(ERRORS_JS)


# --------------------------------------------------------------------------- machine and report


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def machine() -> dict:
    import keras
    import tensorflow as tf

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def rounded(obj, digits: int = 3):
    """Round floats for a readable JSON; structure and types are left alone."""
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [rounded(v, digits) for v in obj]
    return obj


def emit(result: dict, as_json: bool, table) -> dict:
    """The benchmarks' common ending: round, then one JSON line or the table."""
    result = rounded(result)
    if as_json:
        print(json.dumps(result))
    else:
        table(result)
    return result


def fmt(value, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"
