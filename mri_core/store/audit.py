"""The audit trail's vocabulary: which events exist, how each maps onto a DICOM audit message
(PS3.15 A.5, IHE ATNA), which detail keys a row may carry, and the user's client address.

A row never holds a patient identifier: the scan is named by its content hash only, and
``detail`` takes listed keys with checked values (numbers, flags, words from fixed lists), so a
file name, a patient name or a server path has nowhere to go. Anything else is refused here,
before it reaches the database.
"""

from __future__ import annotations

import csv
import hashlib
import io
import ipaddress
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from mri_core import __version__
from mri_core.access import Identity
from mri_core.store.engine import StoreUnavailable
from mri_core.tasks import TASKS

# EventOutcomeIndicator
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE, MAJOR_FAILURE = 0, 4, 8, 12


@dataclass(frozen=True)
class EventKind:
    event_id: str  # DCM code of EventID
    event_type: str  # EventTypeCode as "code meaning"
    action: str  # EventActionCode: C create, R read, U update, D delete, E execute


EVENTS = {
    "sign-in": EventKind("110114", "110122 Login", "E"),  # User Authentication
    "sign-out": EventKind("110114", "110123 Logout", "E"),
    "access-refused": EventKind("110113", "110132 Use of Restricted Function", "E"),  # Security Alert
    "file-opened": EventKind("110103", "DICOM Instances Accessed", "R"),
    "model-run": EventKind("110103", "Model run on the instances", "E"),
    "mask-edited": EventKind("110103", "Mask edited by hand", "U"),
    "case-saved": EventKind("110110", "Case record saved", "U"),  # Patient Record (no patient fields)
    "export": EventKind("110106", "Export", "R"),
    "report": EventKind("110106", "Report created", "C"),
    "folder-evaluated": EventKind("110103", "Folder of instances evaluated", "E"),
    "audit-exported": EventKind("110101", "Audit Log Used", "R"),
    "settings-changed": EventKind("110113", "110129 Security Configuration", "U"),
    # reserved for the PACS (DICOMweb) connection
    "pacs-query": EventKind("110112", "Query", "E"),
    "pacs-retrieve": EventKind("110107", "Import", "C"),
    "pacs-store": EventKind("110104", "DICOM Instances Transferred", "R"),
}

_TOKEN = re.compile(r"^[a-z0-9_]{1,64}$")  # a model's registry name
_MODALITY = re.compile(r"^([A-Z]{2,4}|unknown)$")


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 10**9


def _flag(v) -> bool:
    return isinstance(v, bool)


def _one_of(*words: str):
    allowed = frozenset(words)
    return lambda v: isinstance(v, str) and v in allowed


def _class_name(v) -> bool:
    return isinstance(v, str) and any(v in task.class_names for task in TASKS.values())


# Every key a row's detail may hold, with the check its value must pass.
DETAIL_KEYS = {
    "format": _one_of("png", "nifti", "dicom-seg", "text", "pdf", "csv", "sr"),
    "file_format": _one_of("png", "jpeg", "tiff", "bmp", "dicom", "nifti"),
    "modality": lambda v: isinstance(v, str) and bool(_MODALITY.match(v)),
    "task": lambda v: v in TASKS,
    "models": lambda v: isinstance(v, list) and len(v) <= 32 and all(isinstance(m, str) and _TOKEN.match(m) for m in v),
    "call": _class_name,
    "reliable": _flag,
    "slice": _count,  # 1-based, as shown
    "n_slices": _count,
    "edited_slices": _count,
    "n_images": _count,
    "n_models": _count,
    "n_instances": _count,
    "rows": _count,
    "version": _count,
    "branch": _count,
    "reopened": _flag,
    "conflict": _flag,
    "edited": _flag,
    "patient_details": _flag,  # whether a report or export carried the DICOM patient fields
    "pixels_stored": _flag,
    "retention_days": _count,
    "source": _one_of("upload", "sample", "server-folder", "pacs", "stored-pixels"),
    "query_level": _one_of("study", "series", "instance"),
    "reason": _one_of("no-role", "expired-session", "idle-session", "forged-session", "anonymous-remote", "admin-only",
                      "signed-out"),
    "error": _one_of(*StoreUnavailable.KINDS),
}


def check_detail(detail: dict) -> str:
    """``detail`` as the JSON a row stores; ValueError for a key not listed or a value that fails its check."""
    for key, value in detail.items():
        check = DETAIL_KEYS.get(key)
        if check is None:
            raise ValueError(f"audit detail key {key!r} is not listed in DETAIL_KEYS")
        if not check(value):
            raise ValueError(f"audit detail {key!r} has a value that is not allowed")
    return json.dumps(detail, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class AuditEvent:
    """One row of the trail, checked when made."""

    event: str
    user: Identity
    client_address: str = "unknown"
    outcome: int = SUCCESS
    case_hash: str | None = None
    model_name: str | None = None
    model_sha256: str | None = None
    detail: dict = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def __post_init__(self):
        if self.event not in EVENTS:
            raise ValueError(f"unknown audit event {self.event!r}")
        if self.outcome not in (SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE, MAJOR_FAILURE):
            raise ValueError(f"audit outcome {self.outcome} is not 0, 4, 8 or 12")
        if self.case_hash is not None and not re.fullmatch(r"[0-9a-f]{40,64}", self.case_hash):
            raise ValueError("an audit row names a case by its content hash only")
        if self.model_name is not None and not _TOKEN.match(self.model_name):
            raise ValueError("an audit row names a model by its registry name only")
        check_detail(self.detail)

    def row(self) -> dict:
        kind = EVENTS[self.event]
        return {"at": self.at, "event": self.event, "event_id": kind.event_id, "event_type": kind.event_type,
                "action": kind.action, "outcome": self.outcome, "user_issuer": self.user.issuer,
                "user_subject": self.user.subject, "role": self.user.role, "client_address": self.client_address,
                "app_version": __version__, "case_hash": self.case_hash, "model_name": self.model_name,
                "model_sha256": self.model_sha256, "detail": check_detail(self.detail)}


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: tuple[str, ...] = ()) -> str:
    """The user's address: the peer's, or, where the peer is a trusted proxy, the last address in
    its ``X-Forwarded-For`` that is not itself a trusted proxy (a client can forge the header's
    start, never what the proxy appended)."""
    def valid(address: str) -> str | None:
        try:
            return str(ipaddress.ip_address(address.strip()))
        except ValueError:
            return None

    peer = valid(peer or "")
    if peer is None:
        return "unknown"
    if peer not in trusted_proxies or not forwarded_for:
        return peer
    for hop in reversed(forwarded_for.split(",")):
        address = valid(hop)
        if address is None:
            return peer  # a malformed header: keep what we know
        if address not in trusted_proxies:
            return address
    return peer


@lru_cache(maxsize=64)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_sha256(path: Path) -> str:
    """sha256 of a model's weights file, computed once per file version."""
    st = Path(path).stat()
    return _sha256(str(path), st.st_mtime_ns, st.st_size)


CSV_COLUMNS = ("at", "event", "event_id", "event_type", "action", "outcome", "user_issuer", "user_subject", "role",
               "client_address", "app_version", "case_hash", "model_name", "model_sha256", "detail")


def to_csv(rows: list[dict]) -> bytes:
    """Audit rows as CSV (times in ISO 8601 UTC)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "at": row["at"].astimezone(timezone.utc).isoformat()})
    return buf.getvalue().encode()
