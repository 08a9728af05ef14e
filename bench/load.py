"""Bounded load test: N browser sessions at once upload a scan and wait for the prediction.

    python -m bench.load                          # 8 sessions x 3 requests: a table, then one JSON line
    python -m bench.load --sessions 4 --requests 2 --json   # the JSON line only

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
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.harness import (
    HOME_READY_JS, PREDICT_PATH, ROOT, VIEWPORT, WAIT_MS, MemoryWatch, fmt, launch_options, log, rounded, serve,
    server_pid_for, upload_and_predict, wait_ready, open_predict, page_errors,
)

DEFAULT_FILES = sorted(p for p in (ROOT / "samples" / "brain_tumor").glob("*/*.jpg"))
RUN_TIMEOUT_S = 1800  # the whole run, whatever the counts


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


async def _single_user(browser, url: str, files: list[Path], watch: MemoryWatch, out: dict) -> None:
    """One session uploads every file in turn: the reference calls, and the warm-up (first model
    load, first Grad-CAM trace). Home first, as a user arriving at the app would."""
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


async def _one_session(i: int, page, requests_per_session: int, files: list[Path], out: dict) -> None:
    """Session ``i`` uploads its files in turn; each request is recorded and checked against the reference."""
    for k in range(requests_per_session):
        path = files[(i + k) % len(files)]
        rec = _request(i, k, path)
        out["requests"].append(rec)
        try:
            rec["latency_s"], rec["prediction"], rec["errors"] = await upload_and_predict(page, path, f"s{i}r{k}-{path.name}")
        except Exception as exc:  # recorded, and this session stops: its page may be unusable
            rec["errors"].append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
            return
        rec["expected"] = out["reference"].get(path.name)
        rec["matches"] = rec["prediction"] is not None and rec["prediction"] == rec["expected"]


async def _all_sessions(browser, url: str, sessions: int, requests_per_session: int, files: list[Path],
                        watch: MemoryWatch, out: dict) -> None:
    """All sessions opened and held, then all of them upload at once; each page's errors and connection after."""
    log(f"load: {sessions} sessions x {requests_per_session} requests ...")
    contexts = [await browser.new_context(viewport=VIEWPORT) for _ in range(sessions)]
    pages = await asyncio.gather(*(open_predict(c, url) for c in contexts))
    await asyncio.gather(*(wait_ready(p) for p in pages))
    out["sessions_opened"] = len(pages)
    t0 = time.perf_counter()
    await asyncio.gather(*(_one_session(i, p, requests_per_session, files, out) for i, p in enumerate(pages)))
    out["load_wall_s"] = time.perf_counter() - t0
    out["memory_mb"]["after_run"] = watch.now()
    for i, p in enumerate(pages):
        connected = await p.evaluate(
            "() => !document.querySelector('[data-testid=\"stConnectionStatus\"]')"
            " && !/Connection error/i.test(document.body.innerText)")
        out["page_errors"][i] = await page_errors(p) + ([] if connected else ["connection lost"])
    for c in contexts:
        await c.close()


async def _run(url: str, sessions: int, requests_per_session: int, files: list[Path], watch: MemoryWatch,
               out: dict) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(**launch_options())
        try:
            await _single_user(browser, url, files, watch, out)
            await _all_sessions(browser, url, sessions, requests_per_session, files, watch, out)
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
        print(f"No trained brain_tumor model in {models.default_root()}: the load test uploads to the tumour-type "
              "model. Train one first (python -m mri_core.train brain_tumor ...), or set MRI_MODELS_DIR.",
              file=sys.stderr)
        return 1
    log(f"starting streamlit on {models.default_root()} ...")
    with serve(models.default_root()) as server:
        result = run_load(server.url, args.sessions, args.requests, DEFAULT_FILES, server_pid=server.pid,
                          timeout_s=args.timeout)
    result["models_dir"] = str(models.default_root())
    result["model"] = models.default_model("brain_tumor")
    result = rounded(result, 4)
    if not args.json:
        print_table(result)
    print(json.dumps(result))
    return 0 if result["ok"] else 2


if __name__ == "__main__":
    sys.exit(main())
