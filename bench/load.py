"""Bounded load test: N browser sessions at once upload a scan and wait for the prediction.

    python bench/load.py                          # 8 sessions x 3 requests: a table, then one JSON line
    python bench/load.py --sessions 4 --requests 2 --json   # the JSON line only

It starts its own ``streamlit run app.py`` on localhost (a free port) on the models in
``models/`` (or ``$MRI_MODELS_DIR``), and drives Debian's Chromium through Playwright: one
browser, one context (cookie jar, websocket, Streamlit session) per simulated user.

1. Single-user pass (also the warm-up): one page uploads every file in turn; its predicted
   class per file is the reference.
2. Load: ``sessions`` pages are opened and held; each uploads ``requests`` files in turn
   (rotating through the files, each session from its own offset), all sessions at once.
   Latency is from ``set_input_files`` to the "Prediction" metric showing for that upload.
   Every prediction is checked against the single-user one for the same file.
3. Memory: the server process's resident set (psutil) before anything, after the warm-up,
   after the run, and its peak (sampled every 0.2 s). Growth per request after warm-up is
   (after run - after warm-up) / requests served; it includes the new sessions' own state.

Bounded: fixed counts, a timeout on every wait and one on the whole run; nothing but
localhost is contacted. The reference run and the load see each upload under a fresh name
(``<tag>-<file>``), with that name appended after the image's end marker, so no request is answered
from an earlier one's cache entry (the app caches per content hash).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/load.py` puts bench/, not the repo, on the path
    sys.path.insert(0, str(ROOT))

from bench.run import fmt, rounded  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1280, "height": 1600}
PREDICT_PATH = "/predict"
UPLOAD_INPUT = '.st-key-predict_upload input[type="file"]'
DEFAULT_FILES = sorted(p for p in (ROOT / "samples" / "brain_tumor").glob("*/*.jpg"))
SERVER_START_TIMEOUT_S = 180
WAIT_MS = 120_000  # one page load or one prediction, on 2 busy cores
RUN_TIMEOUT_S = 1800  # the whole run, whatever the counts
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
def serve(models_dir: Path | str, port: int | None = None, timeout_s: float = SERVER_START_TIMEOUT_S):
    """``streamlit run app.py`` on localhost with ``MRI_MODELS_DIR=models_dir``; stopped on exit."""
    port = port or free_port()
    env = dict(os.environ)
    env["MRI_MODELS_DIR"] = str(models_dir)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
           "--server.headless", "true", "--server.address", "localhost",
           "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"]
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


# --------------------------------------------------------------------------- the load run


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in [0, 100]); None for no values."""
    if not values:
        return None
    v = sorted(values)
    pos = (len(v) - 1) * q / 100.0
    lo, hi = int(pos), min(int(pos) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def _request(session: int, index: int, path: Path) -> dict:
    return {"session": session, "request": index, "file": path.name, "latency_s": None, "prediction": None,
            "expected": None, "matches": None, "errors": []}


async def _run(url: str, sessions: int, requests_per_session: int, files: list[Path], watch: MemoryWatch,
               out: dict) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(**launch_options())
        try:
            # 1. Single user, which is also the warm-up (first model load, first Grad-CAM trace).
            # Home first, as a user arriving at the app would.
            log(f"single user: {len(files)} files ...")
            context = await browser.new_context(viewport=VIEWPORT)
            page = await context.new_page()
            page.set_default_timeout(WAIT_MS)
            await page.goto(url.rstrip("/") + "/", timeout=WAIT_MS)
            await page.wait_for_function(HOME_READY_JS, timeout=WAIT_MS, polling=100)
            await page.goto(url.rstrip("/") + PREDICT_PATH, timeout=WAIT_MS)
            await wait_ready(page)
            for path in files:
                latency, label, errors = await upload_and_predict(page, path, f"ref-{path.name}")
                out["reference"][path.name] = label
                out["single_user_latency_s"].append(latency)
                if errors or label is None:
                    out["errors"].append(f"single user, {path.name}: {'; '.join(errors) or 'no prediction'}")
            await context.close()
            await asyncio.sleep(1.0)
            out["memory_mb"]["after_warmup"] = watch.now()

            # 2. All sessions opened and held, then all of them upload at once.
            log(f"load: {sessions} sessions x {requests_per_session} requests ...")
            contexts = [await browser.new_context(viewport=VIEWPORT) for _ in range(sessions)]
            pages = await asyncio.gather(*(open_predict(c, url) for c in contexts))
            await asyncio.gather(*(wait_ready(p) for p in pages))
            out["sessions_opened"] = len(pages)
            t0 = time.perf_counter()

            async def one_session(i: int, page) -> None:
                for k in range(requests_per_session):
                    path = files[(i + k) % len(files)]
                    rec = _request(i, k, path)
                    out["requests"].append(rec)
                    try:
                        rec["latency_s"], rec["prediction"], rec["errors"] = await upload_and_predict(
                            page, path, f"s{i}r{k}-{path.name}")
                    except Exception as exc:  # recorded, and this session stops: its page may be unusable
                        rec["errors"].append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                        return
                    rec["expected"] = out["reference"].get(path.name)
                    rec["matches"] = rec["prediction"] is not None and rec["prediction"] == rec["expected"]

            await asyncio.gather(*(one_session(i, p) for i, p in enumerate(pages)))
            out["load_wall_s"] = time.perf_counter() - t0
            out["memory_mb"]["after_run"] = watch.now()
            for i, p in enumerate(pages):
                connected = await p.evaluate(
                    "() => !document.querySelector('[data-testid=\"stConnectionStatus\"]')"
                    " && !/Connection error/i.test(document.body.innerText)")
                out["page_errors"][i] = await page_errors(p) + ([] if connected else ["connection lost"])
            for c in contexts:
                await c.close()
        finally:
            await browser.close()


def run_load(url: str, sessions: int = 8, requests_per_session: int = 3, files: list[Path | str] | None = None,
             server_pid: int | None = None, timeout_s: float = RUN_TIMEOUT_S) -> dict:
    """Drive ``sessions`` concurrent Chromium pages through upload-and-predict on ``url``'s predict page.

    ``files``: images to upload (default: the bundled brain-tumour samples). ``server_pid``: the
    Streamlit process whose memory is watched (default: whatever listens on the url's port).
    Returns a dict of plain values (see the module docstring); it never raises for a failed
    request or the overall timeout, it reports them.
    """
    files = [Path(f) for f in (files or DEFAULT_FILES)]
    if not files:
        raise ValueError("no files to upload")
    if sessions < 1 or requests_per_session < 1:
        raise ValueError("sessions and requests_per_session must be at least 1")
    pid = server_pid or server_pid_for(url)
    out: dict = {
        "url": url, "sessions": sessions, "requests_per_session": requests_per_session,
        "files": [f.name for f in files], "server_pid": pid, "reference": {}, "single_user_latency_s": [],
        "requests": [], "page_errors": {}, "errors": [], "timed_out": False, "sessions_opened": 0,
        "memory_mb": {"before": None, "after_warmup": None, "after_run": None, "peak": None},
    }
    t0 = time.perf_counter()
    with MemoryWatch(pid) as watch:
        out["memory_mb"]["before"] = watch.now()

        def in_thread() -> None:  # own event loop: safe whatever loop (or sync Playwright) the caller runs
            asyncio.run(asyncio.wait_for(_run(url, sessions, requests_per_session, files, watch, out), timeout_s))

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            try:
                pool.submit(in_thread).result()
            except (asyncio.TimeoutError, TimeoutError):
                out["timed_out"] = True
                out["errors"].append(f"the run did not finish within {timeout_s:.0f} s")
            except Exception as exc:
                out["errors"].append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    out["memory_mb"]["peak"] = watch.peak
    out["wall_s"] = time.perf_counter() - t0
    return summarise(out)


def summarise(out: dict) -> dict:
    reqs = out["requests"]
    served = [r for r in reqs if r["prediction"] is not None]
    latencies = [r["latency_s"] for r in served]
    by_session: dict[int, int] = {}
    for r in served:
        by_session[r["session"]] = by_session.get(r["session"], 0) + 1
    out["page_errors"] = {int(k): v for k, v in out["page_errors"].items()}
    held = [i for i in range(out["sessions"])
            if by_session.get(i, 0) == out["requests_per_session"] and not out["page_errors"].get(i, ["not checked"])]
    mem = out["memory_mb"]
    out.update({
        "requests_expected": out["sessions"] * out["requests_per_session"],
        "requests_served": len(served),
        "sessions_held": len(held),
        "mismatches": [r for r in reqs if r["matches"] is False],
        "request_errors": [r for r in reqs if r["errors"]],
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
        "latency_max_s": max(latencies) if latencies else None,
        "single_user_p50_s": percentile(out["single_user_latency_s"], 50),
        "memory_growth_mb": (mem["after_run"] - mem["after_warmup"])
        if mem["after_run"] is not None and mem["after_warmup"] is not None else None,
    })
    out["memory_growth_per_request_mb"] = (out["memory_growth_mb"] / len(served)
                                           if out["memory_growth_mb"] is not None and served else None)
    out["ok"] = (out["requests_served"] == out["requests_expected"] and not out["mismatches"]
                 and not out["request_errors"] and not out["errors"] and out["sessions_held"] == out["sessions"])
    return out


# --------------------------------------------------------------------------- command line


def print_table(r: dict) -> None:
    m = r["memory_mb"]
    print(f"MRI Insight load test  {r['url']}  model {r.get('model', '?')} ({r.get('models_dir', '?')})")
    print(f"sessions held                      {r['sessions_held']} of {r['sessions']}")
    print(f"requests served                    {r['requests_served']} of {r['requests_expected']}"
          f" ({r['requests_per_session']} per session, {len(r['files'])} files)")
    print(f"predictions equal to single user   {'yes' if not r['mismatches'] and r['requests_served'] else 'NO'}"
          f" ({len(r['mismatches'])} differ)")
    print(f"latency p50 / p95 / max            {fmt(r['latency_p50_s'], '.2f', ' s')} / "
          f"{fmt(r['latency_p95_s'], '.2f', ' s')} / {fmt(r['latency_max_s'], '.2f', ' s')}")
    print(f"single-user latency p50            {fmt(r['single_user_p50_s'], '.2f', ' s')}")
    print(f"server RSS before / warm / after   {fmt(m['before'], '.0f')} / {fmt(m['after_warmup'], '.0f')} / "
          f"{fmt(m['after_run'], '.0f')} MB")
    print(f"server RSS peak                    {fmt(m['peak'], '.0f', ' MB')}")
    print(f"growth after warm-up               {fmt(r['memory_growth_mb'], '.1f', ' MB')}"
          f" ({fmt(r['memory_growth_per_request_mb'], '.2f', ' MB')} per request)")
    print(f"wall time                          {fmt(r['wall_s'], '.0f', ' s')}")
    for e in r["errors"]:
        print(f"error: {e}")
    for rec in r["request_errors"]:
        print(f"session {rec['session']} request {rec['request']} ({rec['file']}): {'; '.join(rec['errors'])}")
    for i, errs in r["page_errors"].items():
        if errs:
            print(f"session {i} page shows: {'; '.join(errs)}")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=8, help="concurrent browser sessions (1-32, default 8)")
    p.add_argument("--requests", type=int, default=3, help="uploads per session (1-20, default 3)")
    p.add_argument("--timeout", type=float, default=RUN_TIMEOUT_S, help=f"overall limit in s (default {RUN_TIMEOUT_S})")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    args = p.parse_args(argv)
    if not 1 <= args.sessions <= 32:
        p.error("--sessions must be between 1 and 32")
    if not 1 <= args.requests <= 20:
        p.error("--requests must be between 1 and 20")
    if not 0 < args.timeout <= 3 * 3600:
        p.error("--timeout must be between 0 and 10800 s")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from mri_core import models

    if not models.list_models("brain_tumor"):
        print(f"No trained brain_tumor model in {models.MODELS_DIR}: the load test uploads to the tumour-type "
              "model. Train one first (python -m mri_core.train brain_tumor ...), or set MRI_MODELS_DIR.",
              file=sys.stderr)
        return 1
    log(f"starting streamlit on {models.MODELS_DIR} ...")
    with serve(models.MODELS_DIR) as server:
        result = run_load(server.url, args.sessions, args.requests, DEFAULT_FILES, server_pid=server.pid,
                          timeout_s=args.timeout)
    result["models_dir"] = str(models.MODELS_DIR)
    result["model"] = models.default_model("brain_tumor")
    result = rounded(result, 4)
    if not args.json:
        print_table(result)
    print(json.dumps(result))
    return 0 if result["ok"] else 2


if __name__ == "__main__":
    sys.exit(main())
