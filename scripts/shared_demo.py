"""Try the shared-server sign-in on one machine: a local OIDC test provider (oidc-provider-mock)
with two demo users, ``clinician`` and ``admin``, picked from its page without a password, and
the app started against it with sign-in on. Run it through ``bash scripts/run_shared_demo.sh``;
Ctrl-C stops both. The browser tests start the same provider and secrets from here.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DEMO_USERS = (
    {"sub": "clinician", "name": "Demo clinician", "email": "clinician@demo.invalid", "roles": ["clinician"]},
    {"sub": "admin", "name": "Demo admin", "email": "admin@demo.invalid", "roles": ["admin"]},
)
START_TIMEOUT_S = 180


def secrets_toml(app_url: str, provider_url: str, access: dict | None = None) -> str:
    """A secrets.toml for the app at ``app_url`` signing in through the provider at ``provider_url``
    (a fresh cookie secret each time), plus an ``[access]`` section (flat keys) if given."""
    auth = {"redirect_uri": f"{app_url}/oauth2callback", "cookie_secret": secrets.token_urlsafe(32),
            "client_id": "mri-insight-demo", "client_secret": "demo-secret",
            "server_metadata_url": f"{provider_url}/.well-known/openid-configuration"}
    lines = ["[auth]", *(f"{k} = {json.dumps(v)}" for k, v in auth.items())]
    if access:
        lines += ["", "[access]", *(f"{k} = {json.dumps(v)}" for k, v in access.items())]
    return "\n".join(lines) + "\n"


def wait_for(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = START_TIMEOUT_S) -> None:
    """Until ``url`` answers 200; RuntimeError with the log's tail if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:3]} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer in {timeout_s:.0f} s: {log.read_text()[-2000:]}")
        time.sleep(0.3)


def start_provider(port: int, users=DEMO_USERS, log: Path | None = None) -> subprocess.Popen:
    """``oidc-provider-mock`` on 127.0.0.1:``port`` with ``users`` (claims with a ``sub``), answering
    its discovery document when this returns. The caller stops it (``terminate``)."""
    log = log or Path(tempfile.mkstemp(prefix="mri-oidc-", suffix=".log")[1])
    cmd = [sys.executable, "-m", "oidc_provider_mock", "-H", "127.0.0.1", "-p", str(port),
           *[a for user in users for a in ("--user-claims", json.dumps(user))]]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/.well-known/openid-configuration", proc, log)
    except BaseException:
        proc.terminate()
        raise
    return proc


def app_env() -> dict[str, str]:
    """The app's environment against a provider on plain http (Authlib refuses it otherwise)."""
    return {**os.environ, "AUTHLIB_INSECURE_TRANSPORT": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8501, help="the app's port (default 8501)")
    parser.add_argument("--provider-port", type=int, default=9400, help="the test provider's port (default 9400)")
    args = parser.parse_args(argv)
    app_url, provider_url = f"http://localhost:{args.port}", f"http://127.0.0.1:{args.provider_port}"
    work = Path(tempfile.mkdtemp(prefix="mri-shared-demo-"))
    (work / "secrets.toml").write_text(secrets_toml(app_url, provider_url))
    (work / "secrets.toml").chmod(0o600)
    provider = start_provider(args.provider_port, log=work / "provider.log")
    app = None
    try:
        app_log = work / "app.log"
        app = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(args.port),
                                "--server.address", "localhost", "--secrets.files", str(work / "secrets.toml")],
                               cwd=ROOT, env=app_env(), stdout=app_log.open("wb"), stderr=subprocess.STDOUT)
        wait_for(f"{app_url}/_stcore/health", app, app_log)
        print(f"MRI Insight with sign-in: {app_url}\n"
              f"Sign in, then pick a demo user on the test provider's page ({provider_url}), no password:\n"
              + "".join(f"  {u['sub']:<10} role {u['roles'][0]}\n" for u in DEMO_USERS)
              + f"Logs and the temporary secrets: {work}\nCtrl-C stops both servers.", flush=True)
        while app.poll() is None and provider.poll() is None:
            time.sleep(1)
        print("A server stopped; see the logs above.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in (app, provider):
            if proc is not None:
                stop(proc)


if __name__ == "__main__":
    sys.exit(main())
