"""A real PACS for the tests: Debian's Orthanc with its DICOMweb plugin on 127.0.0.1
(``scripts/orthanc.py``), started by these fixtures and stopped after the session.

In CI (``CI`` set) a missing Orthanc fails the tests with what to install; on a developer's
machine without it they are skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from scripts import orthanc

USERS = {"clinician": "correct horse battery"}
# A PACS storage policy: it takes images, and refuses segmentations (as some archives do).
REFUSE_SEG = """
function ReceivedInstanceFilter(dicom, origin, info)
  return dicom.Modality ~= 'SEG'
end
"""


def need_orthanc() -> None:
    if orthanc.installed():
        return
    message = "Orthanc is not installed: apt-get install orthanc orthanc-dicomweb (scripts/setup.sh --dev does it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def running_orthanc(**kw):
    """Orthanc with its storage and index in memory (/dev/shm where there is one: storing 2,000
    instances takes 17 s there and 30 s on this machine's disk), removed afterwards."""
    need_orthanc()
    folder = Path(tempfile.mkdtemp(prefix="mri-orthanc-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    try:
        with orthanc.orthanc(folder, **kw) as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pacs_server():
    """Orthanc without authentication; each test loads its own studies (fresh UIDs and patient IDs)."""
    with running_orthanc() as server:
        yield server


@pytest.fixture(scope="session")
def pacs_with_login():
    """Orthanc with HTTP basic authentication (``USERS``)."""
    with running_orthanc(users=USERS) as server:
        yield server


@pytest.fixture(scope="session")
def pacs_refusing_seg():
    """Orthanc whose storage policy (a Lua filter) refuses DICOM SEG objects."""
    with running_orthanc(lua=REFUSE_SEG) as server:
        yield server


@pytest.fixture
def silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never answers: a PACS that hangs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    held, stop = [], threading.Event()

    def accept():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/dicom-web"
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    sock.close()


def closed_port_url() -> str:
    """A DICOMweb URL on a loopback port where nothing listens: an unreachable PACS."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/dicom-web"
