"""deploy/nginx.conf as shipped, in front of ``streamlit run app.py``: Debian's nginx started here on
free loopback ports with a self-signed certificate made by openssl, only the names, ports and
certificate paths swapped. Headers, the blocked endpoints, the redirect, the upload limit, Secure
cookies, and the page itself in Chromium through the proxy (websocket, an upload and its call).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "nginx.conf"
SHOTS = ROOT / "test-artifacts" / "nginx"
SAMPLES = ROOT / "samples"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WAIT_MS = 120_000
IN_CI = bool(os.environ.get("CI"))

if not Path(NGINX).exists() and not IN_CI:  # scripts/setup.sh --dev installs it; in CI a missing one fails
    pytest.skip("no nginx (scripts/setup.sh --dev installs it)", allow_module_level=True)

from bench.harness import (  # noqa: E402
    HOME_READY_JS, READY_JS, RESULT_JS, UPLOAD_INPUT, VIEWPORT, free_port, launch_options, serve,
)

pytestmark = pytest.mark.browser
INSECURE = ssl.create_default_context()
INSECURE.check_hostname = False
INSECURE.verify_mode = ssl.CERT_NONE  # our own self-signed certificate


def swapped(conf: str, swaps: dict[str, str]) -> str:
    """``conf`` with each key replaced; each must be there, so a change to the file fails here loudly."""
    for old, new in swaps.items():
        assert old in conf, f"deploy/nginx.conf no longer has {old!r}: update tests/test_nginx.py"
        conf = conf.replace(old, new)
    return conf


@pytest.fixture(scope="module")
def proxied(use_tiny_models, tmp_path_factory):
    """(https url, http url) of nginx in front of the app; both stopped after the module."""
    work = tmp_path_factory.mktemp("nginx")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(work / "key.pem"), "-out", str(work / "cert.pem")],
                   check=True, capture_output=True)
    app_port, https_port, http_port = free_port(), free_port(), free_port()
    site = swapped(CONF.read_text(), {
        "server 127.0.0.1:8501;": f"server 127.0.0.1:{app_port};",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "server_name mri.example-hospital.org;": "server_name localhost;",
        "/etc/ssl/certs/mri-insight.crt": str(work / "cert.pem"),
        "/etc/ssl/private/mri-insight.key": str(work / "key.pem"),
    })
    (work / "site.conf").write_text(site)
    # The main file Debian's /etc/nginx/nginx.conf would be, in the temporary folder. As root (CI),
    # the workers would drop to "nobody", who cannot enter pytest's private temporary folders.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    (work / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {work}/nginx.pid;\nerror_log {work}/error.log warn;\nevents {{}}\n"
        f"http {{\n  access_log {work}/access.log;\n  client_body_temp_path {work}/body;\n  proxy_temp_path {work}/proxy;\n"
        f"  fastcgi_temp_path {work}/fcgi;\n  uwsgi_temp_path {work}/uwsgi;\n  scgi_temp_path {work}/scgi;\n"
        f"  include {work}/site.conf;\n}}\n")
    check = subprocess.run([NGINX, "-t", "-p", str(work), "-c", str(work / "nginx.conf")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    with serve(use_tiny_models, port=app_port, args=("--server.address", "127.0.0.1", "--server.allowedHosts", "localhost")):
        proc = subprocess.Popen([NGINX, "-p", str(work), "-c", str(work / "nginx.conf"), "-g", "daemon off;"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            url = f"https://localhost:{https_port}"
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, proc.stderr.read().decode()
                try:
                    urllib.request.urlopen(url + "/_stcore/health", context=INSECURE, timeout=5)
                    break
                except OSError:
                    assert time.monotonic() < deadline, (work / "error.log").read_text()
                    time.sleep(0.2)
            yield url, f"http://localhost:{http_port}"
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def fetch(url: str) -> tuple[int, dict[str, str], list[str]]:
    """(status, headers, Set-Cookie values), following no redirect."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=INSECURE))
    try:
        with opener.open(url, timeout=30) as r:
            return r.status, dict(r.headers), r.headers.get_all("Set-Cookie") or []
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.headers.get_all("Set-Cookie") or []


def test_upload_limit_matches_streamlit():
    limit_mb = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
    assert re.search(r"client_max_body_size\s+(\d+)m;", CONF.read_text()).group(1) == str(limit_mb)


def test_security_headers_and_blocked_endpoints(proxied):
    url, plain = proxied
    status, headers, _ = fetch(url + "/")
    assert status == 200
    assert headers["Strict-Transport-Security"].startswith("max-age=63072000")
    assert headers["X-Frame-Options"] == "SAMEORIGIN" and headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in headers["Content-Security-Policy"] and "frame-ancestors 'self'" in headers["Content-Security-Policy"]
    assert "nginx/" not in headers.get("Server", "")
    status, headers, _ = fetch(url + "/_stcore/metrics")
    assert status == 404 and "Strict-Transport-Security" in headers
    with urllib.request.urlopen(url + "/_stcore/host-config", context=INSECURE, timeout=30) as r:
        host_config = json.load(r)  # nginx's own answer: no Streamlit Cloud origin is trusted
    assert host_config["allowedOrigins"] == [] and host_config["enableCustomParentMessages"] is False
    assert fetch(url + "/_stcore/health")[0] == 200
    status, headers, _ = fetch(plain + "/predict")
    assert status == 301 and headers["Location"] == "https://localhost/predict"  # the real site listens on 443


def test_the_page_works_through_the_proxy_with_secure_cookies(proxied):
    from playwright.sync_api import sync_playwright

    url, _ = proxied
    violations = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(**launch_options())
        context = browser.new_context(viewport=VIEWPORT, ignore_https_errors=True)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(url + "/", timeout=WAIT_MS)
        page.wait_for_function(HOME_READY_JS, timeout=WAIT_MS, polling=200)  # the websocket is up
        page.goto(url + "/predict", timeout=WAIT_MS)
        page.wait_for_function(READY_JS, timeout=WAIT_MS, polling=200)
        scan = sorted((SAMPLES / "brain_tumor" / "meningioma").glob("*.jpg"))[-1]
        page.locator(UPLOAD_INPUT).set_input_files(str(scan))  # the upload goes through the proxy
        result = page.wait_for_function(RESULT_JS, arg=scan.name, timeout=WAIT_MS, polling=200).json_value()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "predict-through-nginx.png"), full_page=True, timeout=WAIT_MS)
        cookies = context.cookies()
        browser.close()
    assert result["errors"] == [] and result["prediction"]
    assert violations == []
    streamlit_cookies = [c for c in cookies if c["name"].startswith("_streamlit")]
    assert streamlit_cookies and all(c["secure"] for c in streamlit_cookies), cookies
