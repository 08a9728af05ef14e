"""mri_core.store on SQLite and on a real PostgreSQL (Debian's, started by the session fixture):
migrations (twice, two servers at once), the append-only audit trail, cases with their edits,
version conflicts, pixel retention, and a database that goes away, turns read-only or fills up."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from factories import phantom
from mri_core.access import Identity
from mri_core.case import Case
from mri_core.io import ImageStack
from mri_core.store import PixelPolicy, Store, StoreUnavailable, URL_ENV
from mri_core.store.audit import AuditEvent, check_detail, client_address, to_csv
from mri_core.store.cases import Call, decode_pixels, encode_pixels, restore, snapshot

ROOT = Path(__file__).resolve().parent.parent
ALICE = Identity("https://idp.example", "alice-sub", "clinician", "Alice")
BOB = Identity("https://idp.example", "bob-sub", "clinician", "Bob")
ADMIN = Identity("https://idp.example", "admin-sub", "admin", "Admin")
_databases = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    """A fresh, empty database on each engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'mri_insight.db'}"
    server = request.getfixturevalue("postgres_server")
    name = f"store_test_{next(_databases)}"
    server.execute(f"CREATE DATABASE {name}")
    return server.url(name)


@pytest.fixture
def store(url) -> Store:
    s = Store(url)
    s.ready()
    yield s
    s.engine.dispose()


def scan(n: int = 3, size: int = 32) -> ImageStack:
    return ImageStack(np.stack([phantom(size, size, seed=k) for k in range(n)]), "nifti", "MR", (0.5, 0.5), 2.0)


def edited_case(stack: ImageStack) -> Case:
    """A case with the model's masks, two edits on slice 1, a reset and an undo on slice 2."""
    case = Case("ab" * 20, "Doe_Jane.nii", stack)
    masks = np.zeros(stack.slices.shape[:3], bool)
    masks[:, 10:20, 10:20] = True
    case.set_model_result("lgg_unet_lite", masks, np.array([0.1, 0.9, 0.8]), ["", "", "too dark"])
    first = masks[1].copy()
    first[0:5, 0:5] = True
    case.set_mask("lgg_unet_lite", 1, first)
    second = first.copy()
    second[10:15, 10:15] = False
    case.set_mask("lgg_unet_lite", 1, second)
    third = masks[2].copy()
    third[25:30, 25:30] = True
    case.set_mask("lgg_unet_lite", 2, third)
    case.reset("lgg_unet_lite", 2)
    case.index = 1
    return case


# --------------------------------------------------------------------------- migrations


def test_a_migration_run_twice_changes_nothing(url):
    first, second = Store(url), Store(url)
    first.ready()
    first.audit(AuditEvent("sign-in", ALICE))
    second.ready()  # a second start (or a second server) on a database already at head
    assert first.revision == second.revision == "0001"
    assert len(second.audit_rows()) == 1
    inspector = sa.inspect(second.engine)
    assert {"audit_events", "cases", "settings", "alembic_version"} <= set(inspector.get_table_names())
    with second.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_two_servers_starting_together_on_a_fresh_database(url):
    code = "import sys; from mri_core.store import Store; s = Store(sys.argv[1]); s.ready(); print(s.revision)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    servers = [subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in servers]
    assert [p.returncode for p in servers] == [0, 0], [err for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == ["0001", "0001"]
    with Store(url).engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == ["0001"]


# --------------------------------------------------------------------------- the audit trail


def test_the_database_refuses_to_change_or_delete_audit_rows(store):
    store.audit(AuditEvent("sign-in", ALICE), AuditEvent("sign-out", ALICE))
    statements = ["UPDATE audit_events SET role = 'admin'", "DELETE FROM audit_events"]
    if store.engine.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_events")
    for statement in statements:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(sa.text(statement))
    assert [r["event"] for r in store.audit_rows()] == ["sign-in", "sign-out"]


def test_postgres_app_role_may_insert_and_read_audit_rows_only(postgres_server):
    # The app's own role owns its database and ran the migration: it still cannot change the trail.
    postgres_server.execute("CREATE ROLE mri_app LOGIN", "CREATE DATABASE mri_app_db OWNER mri_app")
    store = Store(postgres_server.url("mri_app_db", user="mri_app"))
    store.ready()
    store.audit(AuditEvent("sign-in", ALICE))
    for statement in ("UPDATE audit_events SET role = 'admin'", "DELETE FROM audit_events", "TRUNCATE audit_events"):
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            with store.engine.begin() as conn:
                conn.execute(sa.text(statement))
    assert len(store.audit_rows()) == 1
    store.engine.dispose()


def test_audit_rows_filter_by_time_event_and_user_and_export_as_csv(store):
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
    store.audit(AuditEvent("sign-in", ALICE, "10.0.0.5", at=t0),
                AuditEvent("file-opened", ALICE, "10.0.0.5", case_hash="a" * 40, detail={"n_slices": 3}, at=t0 + timedelta(hours=1)),
                AuditEvent("export", BOB, "10.0.0.6", case_hash="b" * 40, model_name="lgg_unet_lite", model_sha256="c" * 64,
                           detail={"format": "dicom-seg", "edited": True}, at=t0 + timedelta(days=1)))
    assert [r["event"] for r in store.audit_rows(since=t0 + timedelta(minutes=1))] == ["file-opened", "export"]
    assert [r["event"] for r in store.audit_rows(until=t0 + timedelta(hours=1))] == ["sign-in"]
    assert [r["event"] for r in store.audit_rows(events=["export"])] == ["export"]
    assert [r["event"] for r in store.audit_rows(user=(ALICE.issuer, ALICE.subject))] == ["sign-in", "file-opened"]
    assert store.audit_users() == [(ALICE.issuer, ALICE.subject), (BOB.issuer, BOB.subject)]
    export = store.audit_rows(events=["export"])[0]
    assert (export["event_id"], export["action"], export["outcome"], export["role"]) == ("110106", "R", 0, "clinician")
    assert export["at"] == t0 + timedelta(days=1)
    lines = to_csv(store.audit_rows()).decode().splitlines()
    assert lines[0].startswith("at,event,event_id") and len(lines) == 4
    assert lines[3].startswith("2026-12-02T09:00:00+00:00,export,110106,Export,R,0,https://idp.example,bob-sub,clinician,10.0.0.6")


def test_audit_detail_takes_listed_keys_and_checked_values_only():
    assert check_detail({"format": "png", "slice": 3, "edited": True}) == '{"edited":true,"format":"png","slice":3}'
    refused = [{"file_name": "Doe_Jane.dcm"}, {"format": "Doe^Jane"}, {"slice": "3"}, {"modality": "/srv/scans"},
               {"models": ["../etc"]}, {"edited": 1}, {"call": "ID-12345"}]
    for detail in refused:
        with pytest.raises(ValueError):
            AuditEvent("export", ALICE, detail=detail)
    with pytest.raises(ValueError, match="content hash"):
        AuditEvent("file-opened", ALICE, case_hash="Doe^Jane")
    with pytest.raises(ValueError, match="unknown audit event"):
        AuditEvent("deleted-everything", ALICE)
    with pytest.raises(ValueError):
        AuditEvent("sign-in", ALICE, outcome=3)


def test_client_address_trusts_forwarded_for_only_from_a_listed_proxy():
    assert client_address("10.0.0.7", "1.2.3.4") == "10.0.0.7"  # no proxy configured: the header is ignored
    assert client_address("127.0.0.1", "6.6.6.6, 10.0.0.7", ("127.0.0.1",)) == "10.0.0.7"  # the hop nginx appended
    assert client_address("127.0.0.1", "10.0.0.7, 127.0.0.1", ("127.0.0.1",)) == "10.0.0.7"
    assert client_address("127.0.0.1", "not-an-address", ("127.0.0.1",)) == "127.0.0.1"
    assert client_address(None, None) == "unknown"


# --------------------------------------------------------------------------- cases


def assert_same_case(reopened: Case, case: Case, model: str = "lgg_unet_lite") -> None:
    for k in range(case.stack.n_slices):
        np.testing.assert_array_equal(reopened.mask(model, k), case.mask(model, k))
        np.testing.assert_array_equal(reopened.model_mask(model, k), case.model_mask(model, k))
        assert reopened.can_undo(model, k) == case.can_undo(model, k)
        assert reopened.abstention(model, k) == case.abstention(model, k)
        assert reopened.tumour_probability(model, k) == case.tumour_probability(model, k)
    assert reopened.index == case.index


def test_a_case_comes_back_with_every_edit_and_its_undo_history(store):
    stack = scan()
    case = edited_case(stack)
    calls = [Call("brain_tumor_mri_sepnet", 1, "glioma", 0.9, True)]
    saved = store.save_case(ALICE, case.key, case.name, snapshot(case, calls), "check slice 2", expected=None)
    assert (saved.branch, saved.version, saved.conflict) == (0, 1, False)

    stored = store.latest_case(ALICE, case.key)
    assert stored.summary.notes == "check slice 2" and stored.pixels is None  # no pixels by default
    reopened = Case(case.key, case.name, stack)
    restore(reopened, stored.snapshot)
    assert_same_case(reopened, case)
    assert stored.snapshot.calls() == calls and stored.snapshot.edited_slices() == 2
    for c in (case, reopened):  # Undo steps back the same way on both
        c.undo("lgg_unet_lite", 1)
        c.undo("lgg_unet_lite", 2)
    assert_same_case(reopened, case)
    assert store.latest_case(BOB, case.key) is None and store.load_case(BOB, saved.case_id) is None  # one user's own


def test_each_edit_keeps_when_it_was_made(store):
    case = edited_case(scan())
    first = snapshot(case, [])
    store.save_case(ALICE, case.key, case.name, first, "", None)
    extra = case.mask("lgg_unet_lite", 0).copy()
    extra[0:3, 0:3] = True
    case.set_mask("lgg_unet_lite", 0, extra)
    second = snapshot(case, [], previous=store.latest_case(ALICE, case.key).snapshot)
    times = {(h["slice"], n): e["made"] for h in second.manifest["histories"] for n, e in enumerate(h["entries"])}
    old = {(h["slice"], n): e["made"] for h in first.manifest["histories"] for n, e in enumerate(h["entries"])}
    assert all(times[k] == v for k, v in old.items())  # the earlier edits keep their times
    assert times[(0, 0)] >= max(old.values())
    assert first.digest() != second.digest() and snapshot(case, [], previous=second).digest() == second.digest()


def test_a_second_save_from_an_older_copy_becomes_a_new_branch(store):
    stack = scan()
    case = edited_case(stack)
    saved = store.save_case(ALICE, case.key, case.name, snapshot(case, []), "", None)
    # two sessions (two browsers of one user, or a colleague's) read version 1
    seen = (saved.case_id, saved.version)
    a = store.save_case(ALICE, case.key, case.name, snapshot(case, []), "from A", seen)
    assert (a.case_id, a.version, a.conflict) == (saved.case_id, 2, False)
    b = store.save_case(ALICE, case.key, case.name, snapshot(case, []), "from B", seen)
    assert b.conflict and b.branch == 1 and b.case_id != saved.case_id
    listed = store.list_cases(ALICE)
    assert sorted((c.branch, c.notes) for c in listed) == [(0, "from A"), (1, "from B")]  # both kept
    # a session that never read the stored case does not overwrite it either
    c = store.save_case(ALICE, case.key, case.name, snapshot(case, []), "from C", None)
    assert c.conflict and c.branch == 2
    again = store.save_case(ALICE, case.key, case.name, snapshot(case, []), "from B, later", (b.case_id, b.version))
    assert not again.conflict and again.branch == 1 and again.version == 2


def test_pixels_are_kept_only_when_an_admin_says_so_and_for_the_retention_period(store):
    stack = scan()
    case = edited_case(stack)
    assert store.pixel_policy() == PixelPolicy(store=False, retention_days=30)
    with pytest.raises(PermissionError):
        store.set_pixel_policy(ALICE, PixelPolicy(True, 7))
    store.set_pixel_policy(ADMIN, PixelPolicy(True, 7))
    assert store.pixel_policy() == PixelPolicy(True, 7)
    saved = store.save_case(ALICE, case.key, case.name, snapshot(case, []), "", None, pixels=encode_pixels(stack))
    stored = store.load_case(ALICE, saved.case_id)
    back = decode_pixels(stored.pixels)
    np.testing.assert_array_equal(back.slices, stack.slices)
    assert (back.spacing_mm, back.modality, back.slice_thickness_mm) == (stack.spacing_mm, "MR", 2.0)
    until = stored.summary.pixels_until
    assert timedelta(days=6, hours=23) < until - datetime.now(timezone.utc) <= timedelta(days=7)
    assert store.purge_expired_pixels(now=until - timedelta(minutes=1)) == 0
    assert store.purge_expired_pixels(now=until + timedelta(minutes=1)) == 1
    assert store.load_case(ALICE, saved.case_id).pixels is None
    assert_same_case(_reopen(store, case), case)  # the edits stay; only the pixels went


def _reopen(store: Store, case: Case) -> Case:
    reopened = Case(case.key, case.name, case.stack)
    restore(reopened, store.latest_case(ALICE, case.key).snapshot)
    return reopened


# --------------------------------------------------------------------------- faults


def test_a_database_that_goes_away_and_comes_back(url, request, tmp_path):
    store = Store(url)
    case = edited_case(scan())
    saved = store.save_case(ALICE, case.key, case.name, snapshot(case, []), "", None)
    if url.startswith("sqlite"):
        folder = Path(sa.engine.make_url(url).database).parent
        down, up = (lambda: folder.rename(tmp_path / "moved")), (lambda: (tmp_path / "moved").rename(folder))
    else:
        server = request.getfixturevalue("postgres_server")
        down, up = server.stop, server.start
    down()
    try:
        with pytest.raises(StoreUnavailable) as failure:
            store.save_case(ALICE, case.key, case.name, snapshot(case, []), "while down", (saved.case_id, saved.version))
        assert failure.value.kind == "unreachable" and str(failure.value) == "The case database cannot be reached."
        with pytest.raises(StoreUnavailable):
            store.audit(AuditEvent("sign-in", ALICE))
    finally:
        up()
    again = store.save_case(ALICE, case.key, case.name, snapshot(case, []), "saved when it came back", (saved.case_id, saved.version))
    assert (again.version, again.conflict) == (2, False)
    assert store.latest_case(ALICE, case.key).summary.notes == "saved when it came back"
    store.engine.dispose()


def test_a_read_only_database_says_so_and_keeps_what_it_has(url, request):
    store = Store(url)
    case = edited_case(scan())
    store.save_case(ALICE, case.key, case.name, snapshot(case, []), "before", None)
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        read_only = Store(f"sqlite:///file:{path}?mode=ro&uri=true")
    else:
        server, name = request.getfixturevalue("postgres_server"), sa.engine.make_url(url).database
        server.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        store.engine.dispose()
        read_only = store
    with pytest.raises(StoreUnavailable) as failure:
        read_only.save_case(ALICE, case.key, case.name, snapshot(case, []), "after", None)
    assert failure.value.kind == "read-only"
    assert read_only.latest_case(ALICE, case.key).summary.notes == "before"  # reading still works


def test_a_full_disk_says_so_and_loses_nothing_already_saved(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'full.db'}")
    case = edited_case(scan(n=3, size=256))
    store.save_case(ALICE, case.key, case.name, snapshot(case, []), "", None)
    pages = store.engine.connect().exec_driver_sql("PRAGMA page_count").scalar()
    # SQLite's own limit on the file's pages: the write fails exactly as on a full disk (SQLITE_FULL).
    sa.event.listen(store.engine, "connect", lambda conn, _: conn.execute(f"PRAGMA max_page_count={pages}"))
    noise = np.random.default_rng(0).random((3, 256, 256)) > 0.5
    big = Case("cd" * 20, "big", scan(n=3, size=256))
    big.set_model_result("lgg_unet_lite", noise, np.zeros(3), None)
    with pytest.raises(StoreUnavailable) as failure:
        store.save_case(ALICE, big.key, big.name, snapshot(big, []), "x" * 200_000, None)
    assert failure.value.kind == "full" and "disk is full" in str(failure.value)
    assert_same_case(_reopen(store, case), case)


def test_the_default_url_is_a_sqlite_file_in_data_and_the_environment_wins(monkeypatch):
    from mri_core.store import database_url

    monkeypatch.delenv(URL_ENV, raising=False)
    assert database_url() == f"sqlite:///{ROOT / 'data' / 'mri_insight.db'}"
    assert database_url({"url": "postgresql+psycopg://app@db/mri"}) == "postgresql+psycopg://app@db/mri"
    monkeypatch.setenv(URL_ENV, "sqlite:////tmp/elsewhere.db")
    assert database_url({"url": "postgresql+psycopg://app@db/mri"}) == "sqlite:////tmp/elsewhere.db"
