"""Who is using the app: the identity and role a page passes to the core.

The pages read ``st.user`` (or nothing, in single-user mode) and hand the core an ``Identity``;
every rule about who may do what is decided here, so it is tested without a browser.
"""

from __future__ import annotations

from dataclasses import dataclass

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
