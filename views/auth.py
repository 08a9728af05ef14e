"""The sign-in gate ``app.py`` runs before any page: who the session's user is, or a reason to stop.

With ``[auth]`` in ``.streamlit/secrets.toml``, users sign in with the hospital's identity
provider (OIDC, through ``st.login``); their role comes from a claim named in ``[access]``; a
user with neither role is refused; a session ends after the absolute and idle limits set there
(Streamlit's own login cookie lasts 30 days). Without ``[auth]`` the app is single-user, and on
an address other than localhost it serves nothing unless ``[access] allow_anonymous`` says so.
Every rule is decided in ``mri_core.access``; this module reads Streamlit and draws.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field

import streamlit as st
from streamlit import config

from mri_core import access
from mri_core.access import AccessSettings, Identity
from mri_core.display import DISCLAIMER
from mri_core.store.audit import MINOR_FAILURE, SERIOUS_FAILURE, SUCCESS
from views.session_case import current_identity

LOG = logging.getLogger("mri_insight.auth")
LOGIN_COOKIE = "_streamlit_user"  # Streamlit's signed identity cookie (web/server/starlette auth routes)


def _on_auth_event(kind: str, identity: Identity | None, reason: str = "") -> None:
    """The one place every sign-in event passes: ``sign-in``, ``sign-out``, ``refused`` (a
    signed-in user with no role), ``session-ended`` (a limit reached), ``unverified`` (a login
    cookie that does not verify: forged, or signed with an old secret).

    It writes a server log line with the kind and the role only: no issuer, subject, name or
    e-mail, and not the reason's text. Each is an audit row too (sign-in, sign-out, or
    access-refused with a listed reason code), under the user's ``iss`` + ``sub`` where known."""
    LOG.info("auth event: %s%s", kind, f" (role {identity.role})" if identity else "")
    from views import store_session

    event, outcome = _AUDITED[kind]
    code = {"refused": "no-role", "unverified": "forged-session",
            # access.session_end_reason words the idle limit "without activity"
            "session-ended": "idle-session" if "without activity" in reason else "expired-session"}.get(kind)
    store_session.audit(event, outcome, identity=identity or _unroled(), **({"reason": code} if code else {}))


_AUDITED = {"sign-in": ("sign-in", SUCCESS), "sign-out": ("sign-out", SUCCESS), "refused": ("access-refused", MINOR_FAILURE),
            "session-ended": ("access-refused", MINOR_FAILURE), "unverified": ("access-refused", SERIOUS_FAILURE)}


def _unroled() -> Identity:
    """The audit trail's name for a visitor the gate refused: the provider's ``iss`` + ``sub`` where a
    verified sign-in gave them, "unknown" where none did (a forged cookie)."""
    user = st.user.to_dict()
    user = user if user.get("is_logged_in") else {}
    return Identity(issuer=str(user.get("iss") or "unknown"), subject=str(user.get("sub") or "unknown"), role="none")


# --------------------------------------------------------------------------- configuration


def _secrets_section(name: str) -> dict:
    """A section of ``secrets.toml`` as a plain dict; {} when there is no secrets file or no such
    section. (``st.secrets``, not Streamlit's private singleton, so that AppTest's ``at.secrets`` is read.)"""
    if not st.secrets.load_if_toml_exists():
        return {}
    section = st.secrets.get(name)
    return section.to_dict() if hasattr(section, "to_dict") else dict(section or {})


def auth_configured() -> bool:
    return bool(_secrets_section("auth"))


def settings() -> AccessSettings:
    """``[access]`` of the secrets (ValueError, naming the key, when a value is wrong)."""
    return AccessSettings.from_mapping(_secrets_section("access"))


# --------------------------------------------------------------------------- session clock


@dataclass
class _Clock:
    """When each login (issuer, subject, sign-in time) last ran a page, for the whole process:
    a reload or a second tab is the same login, so the idle limit holds across them."""

    last_seen: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@st.cache_resource
def _clock() -> _Clock:
    return _Clock()


def _login_key(identity: Identity, started: float | None) -> str:
    return hashlib.sha256(f"{identity.issuer}\n{identity.subject}\n{started}".encode()).hexdigest()


def _check_session(identity: Identity, started: float | None, s: AccessSettings) -> tuple[str, bool]:
    """(why the session is over or "", whether this is the login's first page run in this
    process). A live session's activity time is moved on; an ended one's is not, so it stays ended."""
    clock, key, now = _clock(), _login_key(identity, started), time.time()
    with clock.lock:
        first = key not in clock.last_seen
        reason = access.session_end_reason(now, started, clock.last_seen.get(key), s)
        if not reason:
            clock.last_seen[key] = now
        for old in [k for k, t in clock.last_seen.items() if now - t > s.absolute_s]:  # bounded memory
            del clock.last_seen[old]
    return reason, first


# --------------------------------------------------------------------------- the gate


def gate() -> None:
    """Put the session's ``Identity`` in ``st.session_state["identity"]``, or show why not and stop."""
    try:
        s = settings()
    except ValueError as exc:
        st.error(f"MRI Insight's access settings are wrong: {exc}. See .streamlit/secrets.example.toml.")
        st.stop()
    if not auth_configured():
        refusal = access.anonymous_refusal(config.get_option("server.address"), False, s)
        if refusal:
            LOG.error("refusing to serve: %s", refusal)
            st.error(refusal)
            st.stop()
        st.session_state["identity"] = access.SINGLE_USER
        return
    user = st.user.to_dict()
    if not user.get("is_logged_in"):
        st.session_state.pop("identity", None)
        _sign_in_page()
        st.stop()
    try:
        identity = access.identity_from_claims(user, s)
    except access.AccessRefused as refused:
        _on_auth_event("refused", None, str(refused))
        _stop_with(str(refused), "Sign out (to use another account)")
    reason, first = _check_session(identity, access.signed_in_at(user), s)
    if reason:
        if st.session_state.get("auth_ended") != reason:  # once per session, not on every rerun
            st.session_state["auth_ended"] = reason
            _on_auth_event("session-ended", identity, reason)
        _stop_with(reason, "Sign in again")
    if first:
        _on_auth_event("sign-in", identity)
    st.session_state["identity"] = identity
    with st.sidebar:
        st.caption(f"Signed in as **{identity.display_name}** ({identity.role})")
        if st.button("Sign out", key="auth_sign_out", icon=":material/logout:"):
            _on_auth_event("sign-out", identity)
            st.logout()
        _idle_watch(identity, access.signed_in_at(user), s)


def _idle_watch(identity: Identity, started: float | None, s: AccessSettings) -> None:
    """An unattended browser must not keep showing a scan past the limits: every half idle limit
    (a minute at most) a fragment checks the session, without counting as activity, and reruns
    the whole app when it is over, which then shows why."""
    @st.fragment(run_every=min(60.0, s.idle_s / 2))
    def watch() -> None:
        clock = _clock()
        with clock.lock:
            last_seen = clock.last_seen.get(_login_key(identity, started))
        if access.session_end_reason(time.time(), started, last_seen, s):
            st.rerun(scope="app")

    watch()


def _sign_in_page() -> None:
    """What a signed-out visitor sees: the app's name, the disclaimer and a Sign in button. A login
    cookie that did not verify (forged, or signed before the secret changed) is said to be so."""
    st.title("MRI Insight")
    st.caption(DISCLAIMER)
    if LOGIN_COOKIE in st.context.cookies:
        _on_auth_event("unverified", None)
        st.warning("Your sign-in could not be verified (it was altered, or the server's key changed). Please sign in again.")
    st.info("Sign in with your hospital account to use MRI Insight.")
    if st.button("Sign in", key="auth_sign_in", type="primary", icon=":material/login:"):
        st.login()


def _stop_with(message: str, button: str) -> None:
    """Refuse the session: the reason, a button that signs out (the next visit offers Sign in), stop."""
    st.session_state.pop("identity", None)
    st.title("MRI Insight")
    st.error(message, icon=":material/block:")
    if st.button(button, key="auth_sign_out_refused"):
        st.logout()
    st.stop()


def session_note() -> None:
    """Home's line on who is using the app: single-user mode, or the signed-in user and role."""
    identity = current_identity()
    if identity == access.SINGLE_USER:
        st.info("Single-user mode, no sign-in: whoever reaches this computer's browser uses the app. "
                "A shared server signs users in (see docs/deploy.md).", icon=":material/person:")
    else:
        st.caption(f"Signed in as {identity.display_name}, role: {identity.role}.")
