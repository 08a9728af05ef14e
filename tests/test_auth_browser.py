"""Sign-in in real Chromium: ``streamlit run app.py`` with ``[auth]`` pointing at oidc-provider-mock,
both started here on loopback. Sign in as the clinician (picked on the provider's page) → upload a
scan → the call is shown → sign out → signed out, the pages refused; a user with no role is
refused and told why; a forged login cookie is not taken. The demo script is run as a user would.

Screenshots of each step go to test-artifacts/auth/.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "test-artifacts" / "auth"
SAMPLES = ROOT / "samples"
WAIT_MS = 120_000
IN_CI = bool(os.environ.get("CI"))

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the dev requirements install it
    if IN_CI:
        raise
    pytest.skip("playwright is not installed (requirements-dev.txt)", allow_module_level=True)

from bench.harness import CHROMIUM, RESULT_JS, UPLOAD_INPUT, VIEWPORT, free_port, launch_options, serve  # noqa: E402
from scripts.shared_demo import DEMO_USERS, app_env, secrets_toml, start_provider, stop  # noqa: E402

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists() and not IN_CI:  # in CI a missing browser fails below, loudly
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

expect.set_options(timeout=WAIT_MS)
VISITOR = {"sub": "visitor", "name": "Visitor without a role", "email": "visitor@demo.invalid"}  # no roles claim
# The page has settled: nothing stale, the script not running.
IDLE = """() => !document.querySelector('[data-stale="true"]')
               && !document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')"""


@pytest.fixture(scope="module")
def provider():
    port = free_port()
    proc = start_provider(port, users=(*DEMO_USERS, VISITOR))
    yield f"http://127.0.0.1:{port}"
    stop(proc)


def serve_with_sign_in(provider: str, models_dir, folder: Path, access: dict):
    """The app with sign-in against ``provider``; its secrets in a temporary file (--secrets.files)."""
    port = free_port()
    url = f"http://localhost:{port}"
    secrets = folder / "secrets.toml"
    secrets.write_text(secrets_toml(url, provider, access=access))
    extra = {k: v for k, v in app_env().items() if k == "AUTHLIB_INSECURE_TRANSPORT"}
    return serve(models_dir, port=port, args=("--secrets.files", str(secrets)), env_extra=extra)


@pytest.fixture(scope="module")
def app(provider, use_tiny_models, tmp_path_factory) -> str:
    access = {"role_claim": "roles", "absolute_hours": 1, "idle_minutes": 10}
    with serve_with_sign_in(provider, use_tiny_models, tmp_path_factory.mktemp("auth"), access) as server:
        yield server.url


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        b = pw.chromium.launch(**launch_options())
        yield b
        b.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(WAIT_MS)
    yield ctx
    ctx.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True, timeout=WAIT_MS)


def sign_in(page, app: str, who: str) -> None:
    """Sign in button → the provider's page → the predefined user ``who`` → back to the app."""
    page.goto(app + "/", timeout=WAIT_MS)
    button = page.get_by_role("button", name="Sign in")
    expect(button).to_be_visible()
    shot(page, f"1-sign-in-page-{who}")
    button.click()
    page.wait_for_url("**/oauth2/authorize**", timeout=WAIT_MS)
    shot(page, f"2-provider-users-{who}")
    page.locator(f'button[name="sub"][value="{who}"]').click()
    page.wait_for_url(app + "/**", timeout=WAIT_MS)


def test_sign_in_upload_sign_out(app, context):
    page = context.new_page()
    sign_in(page, app, "clinician")
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar).to_contain_text("Signed in as Demo clinician (clinician)")
    expect(page.locator('[data-testid="stMain"]')).to_contain_text("Signed in as Demo clinician, role: clinician.")
    page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)
    shot(page, "3-signed-in-home")

    page.goto(app + "/predict", timeout=WAIT_MS)  # the login cookie carries the session to a new page load
    expect(sidebar).to_contain_text("Signed in as Demo clinician")
    scan = sorted((SAMPLES / "brain_tumor" / "glioma").glob("*.jpg"))[-1]
    page.locator(UPLOAD_INPUT).set_input_files(str(scan))
    result = page.wait_for_function(RESULT_JS, arg=scan.name, timeout=WAIT_MS, polling=200).json_value()
    assert result["errors"] == [] and result["prediction"]
    shot(page, "4-signed-in-prediction")

    page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)
    sidebar.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/oauth2/end_session**", timeout=WAIT_MS)  # the provider's end-session page
    page.get_by_role("button", name="End session").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert "Demo clinician" not in page.locator("body").inner_text()
    shot(page, "5-signed-out")
    page.goto(app + "/predict", timeout=WAIT_MS)  # signed out: the page is not served
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.locator(UPLOAD_INPUT).count() == 0


def test_a_user_without_a_role_is_refused(app, context):
    page = context.new_page()
    sign_in(page, app, "visitor")
    expect(page.locator('[data-testid="stAlertContentError"]')).to_contain_text("claim, so the app cannot tell your role")
    expect(page.get_by_role("button", name="Sign out (to use another account)")).to_be_visible()
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0  # no pages listed
    shot(page, "6-refused-no-role")
    page.goto(app + "/predict", timeout=WAIT_MS)
    expect(page.locator('[data-testid="stAlertContentError"]')).to_contain_text("claim, so the app cannot tell your role")
    assert page.locator(UPLOAD_INPUT).count() == 0


def test_a_forged_login_cookie_is_not_taken(app, context):
    context.add_cookies([{"name": "_streamlit_user", "url": app + "/",
                          "value": '{"is_logged_in": true, "sub": "admin", "roles": ["admin"]}'}])
    page = context.new_page()
    page.goto(app + "/", timeout=WAIT_MS)
    expect(page.locator('[data-testid="stAlertContentWarning"]')).to_contain_text("could not be verified")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    shot(page, "7-forged-cookie")


def test_an_unattended_page_is_closed_at_the_idle_limit(provider, use_tiny_models, tmp_path, context):
    """Nobody touches the page: the app's idle check (every half idle limit) ends the session on
    screen, without waiting for a click."""
    with serve_with_sign_in(provider, use_tiny_models, tmp_path, {"idle_minutes": 0.1}) as server:  # 6 s
        page = context.new_page()
        sign_in(page, server.url, "admin")
        expect(page.locator('[data-testid="stSidebar"]')).to_contain_text("Signed in as Demo admin")
        expect(page.locator('[data-testid="stAlertContentError"]')).to_contain_text("without activity", timeout=60_000)
        expect(page.get_by_role("button", name="Sign in again")).to_be_visible()
        # The page's content is gone. (The sidebar keeps the page list the browser was given
        # before; each link leads back to this message.)
        expect(page.locator('[data-testid="stMain"]')).not_to_contain_text("The models")
        expect(page.locator('[data-testid="stSidebar"]')).not_to_contain_text("Signed in as")
        shot(page, "8-idle-session-ended")


def test_the_demo_script_serves_sign_in_and_stops_on_ctrl_c():
    app_port, provider_port = free_port(), free_port()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(["bash", "scripts/run_shared_demo.sh", "--port", str(app_port), "--provider-port",
                                 str(provider_port)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while "Ctrl-C stops both" not in _read(out):
                assert proc.poll() is None, _read(out)
                assert time.monotonic() < deadline, _read(out)
                time.sleep(0.5)
            printed = _read(out)
            assert f"http://localhost:{app_port}" in printed and "clinician" in printed and "admin" in printed
            with urllib.request.urlopen(f"http://127.0.0.1:{provider_port}/.well-known/openid-configuration") as r:
                assert r.status == 200
            with urllib.request.urlopen(f"http://localhost:{app_port}/_stcore/health") as r:
                assert r.status == 200
        finally:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
            proc.wait(timeout=60)
    for port in (app_port, provider_port):
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)


def _read(f) -> str:
    f.seek(0)
    return f.read()
