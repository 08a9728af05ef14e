"""mri_core.access: who may come in, for how long, on which address, and which server folders an
admin may score; pure functions, tested without a browser."""

from __future__ import annotations

import pytest

from mri_core import access
from mri_core.access import AccessRefused, AccessSettings, Identity, SINGLE_USER

ISS = "https://idp.example.org"
DEFAULT = AccessSettings()


def claims(**extra):
    return {"iss": ISS, "sub": "u-123", "name": "Dr A. Reader", "email": "reader@example.org", **extra}


# --------------------------------------------------------------------------- settings


def test_settings_default_when_the_section_is_absent():
    s = AccessSettings.from_mapping(None)
    assert s == DEFAULT
    assert (s.role_claim, s.absolute_s, s.idle_s, s.allow_anonymous, s.folder_roots) == ("roles", 12 * 3600, 30 * 60, False, {})


def test_settings_from_a_section(tmp_path):
    s = AccessSettings.from_mapping({"role_claim": "groups", "absolute_hours": 8, "idle_minutes": 15, "allow_anonymous": True,
                                     "role_values": {"admin": ["mri-admins"], "clinician": "radiology neuro"},
                                     "folder_roots": {"Validation set": str(tmp_path)}})
    assert s.role_claim == "groups" and s.absolute_s == 8 * 3600 and s.idle_s == 15 * 60 and s.allow_anonymous
    assert s.role_values == {"clinician": ("radiology", "neuro"), "admin": ("mri-admins",)}
    assert s.folder_roots == {"Validation set": tmp_path}


@pytest.mark.parametrize("section, named", [
    ({"role_clam": "roles"}, "role_clam"),
    ({"idle_minutes": 0}, "idle_minutes"),
    ({"absolute_hours": -1}, "absolute_hours"),
    ({"role_values": {"superuser": ["x"]}}, "role_values"),
])
def test_a_wrong_setting_is_refused_and_named(section, named):
    with pytest.raises(ValueError, match=named):
        AccessSettings.from_mapping(section)


# --------------------------------------------------------------------------- identity from the ID token


@pytest.mark.parametrize("value, role", [
    (["clinician"], "clinician"),
    ("clinician", "clinician"),
    (["admin"], "admin"),
    (["clinician", "admin"], "admin"),  # both: the wider role
    ("clinician,admin", "admin"),
    (["staff", "admin"], "admin"),
])
def test_role_from_the_claim(value, role):
    identity = access.identity_from_claims(claims(roles=value), DEFAULT)
    assert identity == Identity(ISS, "u-123", role, "Dr A. Reader")


def test_the_claim_name_and_its_values_come_from_the_settings():
    s = AccessSettings.from_mapping({"role_claim": "groups", "role_values": {"clinician": ["neuro-radiology"]}})
    assert access.identity_from_claims(claims(groups=["neuro-radiology"]), s).role == "clinician"
    with pytest.raises(AccessRefused, match="`groups` claim"):
        access.identity_from_claims(claims(roles=["clinician"]), s)  # the right value under another claim


def test_an_id_token_without_the_role_claim_is_refused_and_told_why():
    with pytest.raises(AccessRefused) as refused:
        access.identity_from_claims(claims(), DEFAULT)
    message = str(refused.value)
    assert "no `roles` claim" in message and "clinician or admin role" in message
    assert "u-123" not in message and "reader@example.org" not in message


@pytest.mark.parametrize("value", [[], "", ["staff", "nurse"], "Admin-ish"])
def test_a_user_with_neither_role_is_refused(value):
    with pytest.raises(AccessRefused, match="neither the clinician nor the admin role"):
        access.identity_from_claims(claims(roles=value), DEFAULT)


@pytest.mark.parametrize("missing", ["iss", "sub"])
def test_no_issuer_or_subject_is_refused(missing):
    c = claims(roles=["admin"])
    del c[missing]
    with pytest.raises(AccessRefused, match="no issuer or subject"):
        access.identity_from_claims(c, DEFAULT)


def test_display_name_falls_back_to_username_email_then_subject():
    base = {"iss": ISS, "sub": "u-9", "roles": ["clinician"]}
    assert access.identity_from_claims({**base, "preferred_username": "areader", "email": "e@x"}, DEFAULT).display_name == "areader"
    assert access.identity_from_claims({**base, "email": "e@x"}, DEFAULT).display_name == "e@x"
    assert access.identity_from_claims(base, DEFAULT).display_name == "u-9"


# --------------------------------------------------------------------------- session limits


def test_signed_in_at_prefers_auth_time_then_iat():
    assert access.signed_in_at({"auth_time": 100, "iat": 200}) == 100.0
    assert access.signed_in_at({"iat": 200}) == 200.0
    assert access.signed_in_at({"iat": True}) is None and access.signed_in_at({}) is None


@pytest.mark.parametrize("now, started, last_seen, ended", [
    (1000.0, 0.0, None, ""),  # first run, well inside both limits
    (12 * 3600.0, 0.0, 12 * 3600.0 - 60, ""),  # exactly at the absolute limit
    (12 * 3600.0 + 1, 0.0, 12 * 3600.0, "limit of 12 hours"),  # past it, however active
    (5000.0, 0.0, 5000.0 - 30 * 60 - 1, "30 minutes without activity"),
    (5000.0, 0.0, 5000.0 - 30 * 60, ""),
    (5000.0, None, None, "no sign-in time"),  # a limit that cannot be checked is not met
])
def test_session_limits(now, started, last_seen, ended):
    reason = access.session_end_reason(now, started, last_seen, DEFAULT)
    assert (reason == "") if not ended else (ended in reason and "sign in again" in reason)


def test_limits_follow_the_settings():
    s = AccessSettings.from_mapping({"absolute_hours": 1, "idle_minutes": 1})
    assert "limit of 1 hour " in access.session_end_reason(3601, 0, 3600, s)
    assert "1 minute without" in access.session_end_reason(200, 0, 100, s)
    short = AccessSettings.from_mapping({"idle_minutes": 0.1})
    assert "after 6 seconds without" in access.session_end_reason(100, 0, 90, short)


# --------------------------------------------------------------------------- anonymous mode


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1", "127.0.1.1", "::1", "[::1]"])
def test_anonymous_on_localhost_is_allowed(address):
    assert access.anonymous_refusal(address, False, DEFAULT) == ""


@pytest.mark.parametrize("address, where", [("0.0.0.0", "other than localhost"), ("10.1.2.3", "other than localhost"),
                                            ("", "every network interface"), (None, "every network interface")])
def test_anonymous_elsewhere_is_refused_unless_allowed_or_signed_in(address, where):
    reason = access.anonymous_refusal(address, False, DEFAULT)
    assert where in reason and "allow_anonymous" in reason and "[auth]" in reason
    assert access.anonymous_refusal(address, True, DEFAULT) == ""
    assert access.anonymous_refusal(address, False, AccessSettings(allow_anonymous=True)) == ""


# --------------------------------------------------------------------------- server folders

ADMIN = Identity(ISS, "a-1", "admin")
CLINICIAN = Identity(ISS, "c-1", "clinician")


def test_folders_are_the_roots_and_their_sub_folders_for_admins_only(tmp_path):
    root = tmp_path / "validation"
    for sub in ("set_b", "set_a", ".hidden"):
        (root / sub / "glioma").mkdir(parents=True)
    (root / "notes.txt").write_text("not a folder")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "link_out").symlink_to(outside)
    s = AccessSettings.from_mapping({"folder_roots": {"Validation": str(root), "Gone": str(tmp_path / "missing")}})
    folders = access.server_folders(ADMIN, s)
    assert [f.label for f in folders] == ["Validation", "Validation › set_a", "Validation › set_b"]
    assert [f.path for f in folders] == [root, root / "set_a", root / "set_b"]
    assert access.server_folders(CLINICIAN, s) == []
    assert access.server_folders(SINGLE_USER, s) == folders  # single-user mode: the one user is the admin
    assert access.server_folders(ADMIN, DEFAULT) == []  # none configured, none offered


def test_folder_problems_name_no_path_or_folder(tmp_path):
    from mri_core.io.folders import list_class_folder, list_lgg

    classes = ("glioma", "meningioma", "notumor", "pituitary")
    secret = tmp_path / "SECRET_ward_7"
    (secret / "PATIENT_SMITH").mkdir(parents=True)
    cases = []
    for call in (lambda: list_class_folder(secret, classes), lambda: list_class_folder(tmp_path / "none", classes)):
        with pytest.raises((ValueError, OSError)) as exc:
            call()
        cases.append((exc.value, classes))
    (secret / "PATIENT_SMITH").rmdir()
    with pytest.raises(ValueError) as empty:
        list_class_folder(secret, classes)
    with pytest.raises(FileNotFoundError) as no_table:
        list_lgg(secret)
    cases += [(empty.value, classes), (no_table.value, None)]
    messages = [access.folder_problem(exc, names) for exc, names in cases]
    assert "names none of the task's classes (glioma, meningioma, notumor, pituitary)" in messages[0]
    assert messages[2] == "This folder holds no images the model can read (it needs one sub-folder per class)."
    assert "no slices.csv" in messages[3]
    for exc, message in zip(cases, messages):
        assert str(tmp_path) in str(exc[0]) or "SECRET" in str(exc[0])  # the reader's own message names it
        assert "SECRET" not in message and "PATIENT" not in message and str(tmp_path) not in message


def test_the_shipped_example_settings_parse():
    import tomllib
    from pathlib import Path

    example = tomllib.loads((Path(__file__).resolve().parent.parent / ".streamlit" / "secrets.example.toml").read_text())
    assert set(example["auth"]) == {"redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url"}
    s = AccessSettings.from_mapping(example["access"])
    assert s.role_claim == "roles" and not s.allow_anonymous and s.folder_roots == {}
    assert s.role_values == {"clinician": ("clinician",), "admin": ("admin",)}
