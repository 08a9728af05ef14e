"""Who is using the app: the identity and role a page passes to the core.

The pages read ``st.user`` (or nothing, in single-user mode) and hand the core an ``Identity``;
every rule about who may do what is decided here, so it is tested without a browser.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

ROLES = ("clinician", "admin")


@dataclass(frozen=True)
class Identity:
    """A signed-in user as the audit trail and the case store know them: the identity provider's
    issuer and subject (never the e-mail alone, which can be reassigned), and the app's role."""

    issuer: str
    subject: str
    role: str  # one of ROLES
    display_name: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# Single-user mode (no [auth] configured, served on localhost only): one person owns the server.
SINGLE_USER = Identity(issuer="local", subject="single-user", role="admin", display_name="single-user mode")


# --------------------------------------------------------------------------- the settings

LOCAL_ADDRESSES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class AccessSettings:
    """The ``[access]`` section of ``.streamlit/secrets.toml`` (see ``secrets.example.toml``).

    ``role_values`` maps each of ``ROLES`` to the claim values that grant it (a hospital's group
    names rarely are ``clinician`` and ``admin``); ``folder_roots`` maps a label the admin sees
    to a server folder, whose path is never shown."""

    role_claim: str = "roles"
    role_values: dict = field(default_factory=lambda: {role: (role,) for role in ROLES})
    absolute_hours: float = 12.0
    idle_minutes: float = 30.0
    allow_anonymous: bool = False
    folder_roots: dict = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, section: Mapping | None) -> "AccessSettings":
        """Settings from the parsed section (None or empty: the defaults); a wrong value is a
        ``ValueError`` that names the key, so a mistyped config stops the app with a clear reason."""
        section = dict(section or {})
        unknown = set(section) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"[access] has unknown keys: {', '.join(sorted(unknown))}")
        default = cls()
        values = {role: tuple(_as_list(v)) for role, v in dict(section.get("role_values", default.role_values)).items()}
        if set(values) - set(ROLES):
            raise ValueError(f"[access.role_values] may only name the roles {', '.join(ROLES)}")
        limits = {k: float(section.get(k, getattr(default, k))) for k in ("absolute_hours", "idle_minutes")}
        if min(limits.values()) <= 0:
            raise ValueError("[access] absolute_hours and idle_minutes must be above 0")
        roots = {str(label): Path(str(path)).expanduser() for label, path in dict(section.get("folder_roots", {})).items()}
        return cls(role_claim=str(section.get("role_claim", default.role_claim)),
                   role_values={**{r: (r,) for r in ROLES}, **values}, allow_anonymous=bool(section.get("allow_anonymous", False)),
                   folder_roots=roots, **limits)

    @property
    def absolute_s(self) -> float:
        return self.absolute_hours * 3600

    @property
    def idle_s(self) -> float:
        return self.idle_minutes * 60


def _as_list(value) -> list[str]:
    """A claim or setting given as a list or as one string (space- or comma-separated, as some
    identity providers send groups)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    return [str(v) for v in value]


# --------------------------------------------------------------------------- who may come in


class AccessRefused(Exception):
    """A signed-in user the app does not let in; the message is shown to them as it is."""


def identity_from_claims(claims: Mapping, settings: AccessSettings) -> Identity:
    """The ``Identity`` for a signed-in user's ID-token claims (``st.user``), or ``AccessRefused``
    saying why: no issuer or subject, no role claim, or neither role in it. A user holding both
    roles is an admin."""
    issuer, subject = str(claims.get("iss") or ""), str(claims.get("sub") or "")
    if not issuer or not subject:
        raise AccessRefused("The identity provider's answer has no issuer or subject, so this sign-in cannot be "
                            "attributed to anyone. Ask the hospital's IT team to check the provider's setup.")
    claim = settings.role_claim
    if claim not in claims:
        raise AccessRefused(f"Your account's sign-in carries no `{claim}` claim, so the app cannot tell your role. "
                            f"Ask the hospital's IT team to give you the clinician or admin role for MRI Insight.")
    held = set(_as_list(claims.get(claim)))
    role = next((r for r in reversed(ROLES) if held & set(settings.role_values[r])), None)  # admin first
    if role is None:
        raise AccessRefused(f"Your account has neither the clinician nor the admin role for MRI Insight (its `{claim}` "
                            f"claim names neither). Ask the hospital's IT team for one.")
    name = claims.get("name") or claims.get("preferred_username") or claims.get("email") or subject
    return Identity(issuer=issuer, subject=subject, role=role, display_name=str(name))


def signed_in_at(claims: Mapping) -> float | None:
    """When the user authenticated (``auth_time``, else the ID token's ``iat``), in epoch seconds.
    It comes from the signed login cookie, so a reload or a new tab keeps the same value."""
    for key in ("auth_time", "iat"):
        value = claims.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def session_end_reason(now: float, started: float | None, last_seen: float | None, settings: AccessSettings) -> str:
    """Why a session is over ("" while it is not): past the absolute limit since sign-in, or idle
    past the idle limit since the last page run. No sign-in time at all counts as over: the limit
    could not be enforced."""
    if started is None:
        return "Your sign-in carries no sign-in time, so its age cannot be checked. Please sign in again."
    if now - started > settings.absolute_s:
        return f"Your session reached its limit of {_duration(settings.absolute_s)} since you signed in. Please sign in again."
    if last_seen is not None and now - last_seen > settings.idle_s:
        return f"Your session ended after {_duration(settings.idle_s)} without activity. Please sign in again."
    return ""


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return f"{hours} hour{'s' if hours != 1 else ''}"
    if seconds < 60:  # a test's or a demo's limit
        return f"{round(seconds)} seconds"
    minutes = round(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def anonymous_refusal(address: str | None, auth_configured: bool, settings: AccessSettings) -> str:
    """Why the app must not serve anyone ("" when it may): no sign-in configured, served on an
    address other than localhost (an empty address listens on every interface), and no explicit
    ``allow_anonymous``."""
    if auth_configured or settings.allow_anonymous:
        return ""
    address = (address or "").strip().strip("[]")
    if address in LOCAL_ADDRESSES or address.startswith("127."):
        return ""
    where = "every network interface" if not address else "an address other than localhost"
    return (f"MRI Insight is served on {where} without sign-in. Configure sign-in ([auth] in .streamlit/secrets.toml, "
            f"see docs/deploy.md), serve on localhost only, or set allow_anonymous = true under [access] "
            f"to let anyone who reaches the server use it.")


# --------------------------------------------------------------------------- server folders


@dataclass(frozen=True)
class ServerFolder:
    """A folder an admin may score: shown by its label (the configured root's label, then the
    sub-folder's name), never by its path."""

    label: str
    path: Path


def server_folders(identity: Identity, settings: AccessSettings) -> list[ServerFolder]:
    """The folders ``identity`` may choose to score: none unless an admin; each configured root
    that exists and its direct sub-folders (hidden ones left out), resolved and kept inside their
    root (a link pointing elsewhere is left out)."""
    if not identity.is_admin:
        return []
    out = []
    for label, root in settings.folder_roots.items():
        root = Path(root).resolve()
        if not root.is_dir():
            continue
        out.append(ServerFolder(label, root))
        for sub in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
            real = sub.resolve()
            if real.is_dir() and real.is_relative_to(root):
                out.append(ServerFolder(f"{label} › {sub.name}", real))
    return out


def folder_problem(exc: Exception, class_names: tuple[str, ...] | None) -> str:
    """What to tell a user whose chosen folder cannot be scored, naming no path or folder: the
    readers' messages quote both. ``class_names`` None: the LGG layout (slices.csv)."""
    if class_names is None:
        if isinstance(exc, FileNotFoundError):
            return "This folder is not in the LGG layout: it has no slices.csv listing its slices and masks."
        return "This folder's slices.csv lists images or masks the model cannot read."
    if isinstance(exc, ValueError) and "is not one of the classes" in str(exc):
        return ("This folder has a sub-folder that names none of the task's classes "
                f"({', '.join(class_names)}): it needs one sub-folder per class and nothing else.")
    return "This folder holds no images the model can read (it needs one sub-folder per class)."
