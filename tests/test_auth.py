"""The sign-in gate (views/auth.py) and the admins-only server folders, through AppTest with
``at.user`` set: a clinician, an admin, a user with neither role, a signed-out visitor, expired
and idle sessions, single-user mode and the refusal to serve anonymously off localhost.

``at.secrets`` carries ``[auth]`` and ``[access]`` (the gate reads ``st.secrets``); the real
``st.login`` redirect, which reads a secrets file, is driven in Chromium by test_auth_browser.py."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from conftest import write_class_folder

APP = str(Path(__file__).resolve().parent.parent / "app.py")
ISS = "http://127.0.0.1:9/idp"
AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "a-test-cookie-secret-of-32-chars",
        "client_id": "mri-insight", "client_secret": "test", "server_metadata_url": f"{ISS}/.well-known/openid-configuration"}


@pytest.fixture(autouse=True)
def _models(use_tiny_models):
    yield


def user(role=None, **extra) -> dict:
    claims = {"is_logged_in": True, "iss": ISS, "sub": f"sub-{role}", "name": f"Dr {role}", "email": f"{role}@example.org",
              "auth_time": int(time.time()) - 60}
    if role is not None:
        claims["roles"] = [role]
    return {**claims, **extra}


def start(who: dict | None, access: dict | None = None, auth: bool = True, page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    if auth:
        at.secrets["auth"] = AUTH
    if access is not None:
        at.secrets["access"] = access
    if who is not None:
        at.user = who
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def page_text(at: AppTest) -> str:
    """Everything the page shows as text, widget labels and options included."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "error", "warning", "info", "success", "text"):
        parts += [str(e.value) for e in getattr(at, kind)]
    for kind in ("button", "radio", "selectbox", "multiselect", "text_input"):
        for w in getattr(at, kind):
            parts += [str(w.label), *map(str, getattr(w, "options", []) or [])]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    parts += [d.value.to_string() for d in at.dataframe]
    return "\n".join(parts)


def shows_pages(at: AppTest) -> bool:
    """Home's model tables were drawn: the gate let the session through."""
    return any(s.value == "The models" for s in at.subheader)


# --------------------------------------------------------------------------- sign-in and roles


def test_signed_out_visitor_gets_a_sign_in_button_and_nothing_else():
    for who in ({"is_logged_in": False}, None):  # None: AppTest's default user, which has no is_logged_in
        at = start(who)
        assert [b.label for b in at.button] == ["Sign in"]
        assert "Sign in with your hospital account" in page_text(at)
        assert not shows_pages(at)


@pytest.mark.parametrize("role", ["clinician", "admin"])
def test_a_user_with_a_role_gets_in_and_can_sign_out(role, caplog):
    caplog.set_level(logging.INFO, logger="mri_insight.auth")
    who = user(role, sub=f"sub-{role}-{time.time_ns()}")
    at = start(who)  # a login this process has not seen: its sign-in is logged
    assert shows_pages(at)
    assert f"Signed in as **Dr {role}** ({role})" in [c.value for c in at.sidebar.caption]
    assert f"Signed in as Dr {role}, role: {role}." in page_text(at)
    assert at.session_state["identity"].role == role and at.session_state["identity"].subject.startswith(f"sub-{role}-")
    at.button(key="auth_sign_out").click().run()
    assert not at.exception
    logged = [r.getMessage() for r in caplog.records if r.name == "mri_insight.auth"]
    assert logged == [f"auth event: sign-in (role {role})", f"auth event: sign-out (role {role})"]  # no identifier
    at.run()  # the next run, as after the logout redirect
    assert [b.label for b in at.button] == ["Sign in"] and not shows_pages(at)
    rows = audit_rows(who["sub"])  # and audited, under iss + sub
    assert [(r["event"], r["role"], r["user_issuer"]) for r in rows] == [("sign-in", role, ISS), ("sign-out", role, ISS)]


def audit_rows(subject_prefix: str) -> list[dict]:
    """The audit trail's rows of the users whose subject starts with ``subject_prefix``."""
    from mri_core.store import Store, database_url

    return [r for r in Store(database_url()).audit_rows() if r["user_subject"].startswith(subject_prefix)]


def test_roles_from_another_claim_and_values_set_in_the_config():
    access = {"role_claim": "groups", "role_values": {"admin": ["mri-admins"]}}
    at = start(user(None, groups=["staff", "mri-admins"]), access)
    assert shows_pages(at) and at.session_state["identity"].role == "admin"


@pytest.mark.parametrize("claims, why", [
    ({}, "carries no `roles` claim"),  # an ID token without the role claim
    ({"roles": ["nurse"]}, "neither the clinician nor the admin role"),
])
def test_a_user_without_a_role_is_refused_and_told_why(claims, why, caplog):
    caplog.set_level(logging.INFO, logger="mri_insight.auth")
    at = start(user(None, **claims))
    assert [r.getMessage() for r in caplog.records if r.name == "mri_insight.auth"] == ["auth event: refused"]
    assert why in at.error[0].value
    assert not shows_pages(at) and "identity" not in at.session_state
    assert [b.label for b in at.button] == ["Sign out (to use another account)"]
    at.switch_page("views/predict.py")
    at.run()
    assert not at.exception and why in at.error[0].value and not at.file_uploader  # no page behind it
    refused = [r for r in audit_rows("sub-None") if r["event"] == "access-refused"]
    assert refused and refused[-1]["role"] == "none" and '"no-role"' in str(refused[-1]["detail"])


# --------------------------------------------------------------------------- sessions end


def test_a_session_past_its_absolute_limit_is_ended_with_a_message():
    at = start(user("clinician", auth_time=int(time.time()) - 13 * 3600))
    assert "limit of 12 hours since you signed in" in at.error[0].value
    assert not shows_pages(at) and [b.label for b in at.button] == ["Sign in again"]
    at = start(user("clinician", auth_time=int(time.time()) - 3 * 3600), {"absolute_hours": 2})
    assert "limit of 2 hours" in at.error[0].value


def test_an_idle_session_is_ended_and_stays_ended_on_reload():
    from views.auth import _clock

    who = user("admin", sub="idle-admin", auth_time=int(time.time()) - 5)
    at = start(who, {"idle_minutes": 1})
    assert shows_pages(at)
    with _clock().lock:  # the user walks away for two minutes
        for key in _clock().last_seen:
            _clock().last_seen[key] -= 120
    at.run()
    assert "after 1 minute without activity" in at.error[0].value and not shows_pages(at)
    again = start(who, {"idle_minutes": 1})  # a reload is a new session of the same login
    assert "without activity" in again.error[0].value and not shows_pages(again)


def test_a_sign_in_without_a_sign_in_time_is_ended():
    who = user("clinician")
    del who["auth_time"]
    at = start(who)
    assert "no sign-in time" in at.error[0].value


# --------------------------------------------------------------------------- without [auth]


def test_single_user_mode_on_localhost_says_so():
    at = start(None, auth=False)
    assert shows_pages(at)
    assert "Single-user mode, no sign-in" in at.info[0].value
    assert not at.sidebar.button  # nobody to sign out


@pytest.fixture
def address():
    """Set ``server.address`` as ``streamlit run --server.address`` would; restored after."""
    old = config.get_option("server.address")
    yield lambda value: config.set_option("server.address", value)
    config.set_option("server.address", old)


@pytest.mark.parametrize("where", ["0.0.0.0", "10.20.30.40", ""])
def test_no_anonymous_service_off_localhost(address, where):
    address(where)
    at = start(None, auth=False)
    assert "without sign-in" in at.error[0].value and "allow_anonymous" in at.error[0].value
    assert not shows_pages(at)
    assert shows_pages(start(None, {"allow_anonymous": True}, auth=False))  # said on purpose
    assert [b.label for b in start(None, auth=True).button] == ["Sign in"]  # with sign-in: served


def test_wrong_access_settings_stop_the_app_with_the_key_named():
    at = start(user("admin"), {"idle_minute": 5})
    assert "access settings are wrong" in at.error[0].value and "idle_minute" in at.error[0].value
    assert not shows_pages(at)


# --------------------------------------------------------------------------- server folders


SECRET_FOLDER = "SECRET_Project_Smith_Ward7"
PATIENT_FILE = "PATIENT_SMITH_JOHN_MRN1011.jpg"


@pytest.fixture
def roots(tmp_path):
    """A configured root holding a class-per-folder set ("Tumour set") with a file named after a
    patient, a folder named like a secret, and a set with a stray sub-folder."""
    from mri_core.tasks import TASKS

    root = tmp_path / "srv_private_root"
    names = TASKS["brain_tumor"].class_names
    good = write_class_folder(root / "tumour_set", names, per_class=3)
    (good / names[0] / f"{names[0]}_0.jpg").rename(good / names[0] / PATIENT_FILE)
    write_class_folder(root / SECRET_FOLDER, names, per_class=2)
    (root / SECRET_FOLDER / "PATIENT_JONES").mkdir()
    return root, {"folder_roots": {"Validation sets": str(root)}}


def test_clinicians_never_see_server_folders(roots):
    _, access = roots
    at = start(user("clinician"), access, page="views/compare.py")
    assert at.radio(key="cmp_source").options == ["bundled samples"]
    assert "server" not in page_text(at).split("Evaluate side by side")[-1]


def test_no_folders_configured_no_folder_choice():
    at = start(user("admin"), page="views/compare.py")
    assert at.radio(key="cmp_source").options == ["bundled samples"]
    assert "No server folders are configured" in page_text(at)


def test_no_typed_folder_path_and_no_path_in_any_message(roots, two_tumour_models, monkeypatch):
    from mri_core.models import ROOT_ENV

    monkeypatch.setenv(ROOT_ENV, str(two_tumour_models))  # two models that disagree: images are listed
    root, access = roots
    at = start(user("admin"), access, page="views/compare.py")
    at.radio(key="cmp_source").set_value("a folder on this server").run()
    assert not at.text_input  # nothing to type a path into
    box = at.selectbox(key="cmp_folder")
    assert box.options == ["Validation sets", f"Validation sets › {SECRET_FOLDER}", "Validation sets › tumour_set"]
    forbidden = (str(root), str(root.parent), "srv_private_root", PATIENT_FILE, "PATIENT_SMITH", "PATIENT_JONES")

    def shown() -> str:  # the folder labels an admin chooses from are the only place a folder's name may be
        return page_text(at).replace(f"Validation sets › {SECRET_FOLDER}", "<the chosen label>")

    at.selectbox(key="cmp_folder").set_value("Validation sets › tumour_set").run()
    assert not at.exception and not at.error
    assert "12 images from the chosen folder" in page_text(at)
    assert [m.value for m in at.markdown if m.value.startswith("**Image ")], "no disagreement listed"
    assert not [s for s in forbidden + (SECRET_FOLDER,) if s in shown()]
    for label, problem in (("Validation sets", "names none of the task's classes"),
                           (f"Validation sets › {SECRET_FOLDER}", "names none of the task's classes")):
        at.selectbox(key="cmp_folder").set_value(label).run()
        assert not at.exception and problem in at.error[0].value
        assert not [s for s in forbidden + (SECRET_FOLDER,) if s in at.error[0].value]
        assert not [s for s in forbidden if s in shown()]
