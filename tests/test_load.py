"""Issue 7, part 3: eight browser sessions at once on the real server (tiny models), bounded.

Every request must be served, every prediction must equal the single-user one for the same
file, no page may show an error, and the server must not grow per request once warm. Latency is
reported by bench/load.py, never asserted: it depends on the machine and its neighbours.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.load import run_load
from test_browser import SHOTS, server  # noqa: F401  (a module fixture: this module gets its own server)

pytestmark = pytest.mark.browser

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "brain_tumor"
FILES = [sorted((SAMPLES / c).glob("*.jpg"))[0] for c in ("glioma", "meningioma", "notumor", "pituitary")]
GROWTH_LIMIT_MB = 300  # generous: 16 requests; a per-request leak of an image-sized buffer or more shows


def test_eight_sessions_at_once(server):  # noqa: F811
    r = run_load(server.url, sessions=8, requests_per_session=2, files=FILES, server_pid=server.pid, timeout_s=1500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "load.json").write_text(json.dumps(r, indent=1, default=str))

    assert not r["timed_out"] and r["errors"] == [], r["errors"]
    assert set(r["reference"]) == {f.name for f in FILES} and all(r["reference"].values()), r["reference"]
    assert r["requests_served"] == r["requests_expected"] == 16, r["request_errors"]
    assert r["sessions_held"] == 8, r["page_errors"]
    for rec in r["requests"]:
        assert rec["errors"] == [], rec
        assert rec["prediction"] == r["reference"][rec["file"]], rec
    assert all(errs == [] for errs in r["page_errors"].values()), r["page_errors"]
    assert {rec["session"] for rec in r["requests"]} == set(range(8))

    mem = r["memory_mb"]
    assert None not in mem.values(), mem
    assert mem["before"] <= mem["after_warmup"] <= mem["peak"] and mem["after_run"] <= mem["peak"], mem
    assert mem["after_run"] - mem["after_warmup"] < GROWTH_LIMIT_MB, mem
