"""A real PACS on this machine: Debian's Orthanc with its DICOMweb plugin on 127.0.0.1, and the
series the tests and the demo load into it.

``orthanc(folder)`` starts ``Orthanc CONFIG`` with a generated JSON config (free ports, storage in
``folder``, no remote access, HTTP basic authentication only when ``users`` are given) and waits
until QIDO-RS answers; it stops the server on exit. ``lgg_mr_series`` turns the bundled LGG sample
into one multi-slice MR series per sequence, with synthetic identifiers, as a scanner would send it.

Used by ``tests/pacs_server.py`` (pytest fixtures) and ``scripts/pacs_demo.py`` (the demo).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
START_TIMEOUT_S = 60
ROOT = Path(__file__).resolve().parent.parent
LGG_SAMPLE = ROOT / "samples" / "lgg"
SEQUENCES = ("pre-contrast", "FLAIR", "post-contrast")  # the channels of the LGG set's RGB slices


def installed() -> bool:
    return Path(ORTHANC).exists() and Path(DICOMWEB_PLUGIN).exists()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class OrthancServer:
    url: str  # the DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web
    http_root: str  # Orthanc's own REST root
    users: dict[str, str]
    log_path: Path


def _config(folder: Path, http_port: int, dicom_port: int, users: dict[str, str] | None, lua: str | None) -> dict:
    scripts = []
    if lua:
        (folder / "filter.lua").write_text(lua)
        scripts.append(str(folder / "filter.lua"))
    return {
        "LuaScripts": scripts,
        "Name": "MRI-Insight-test-PACS",
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "MRIINSIGHT",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": bool(users),
        "RegisteredUsers": dict(users or {}),
        "HttpTimeout": 60,
        "StorageCompression": False,
        "Plugins": [DICOMWEB_PLUGIN],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full", "SeriesMetadata": "Full"},
    }


def _get(url: str, users: dict[str, str]) -> int:
    request = urllib.request.Request(url)
    if users:
        user, password = next(iter(users.items()))
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    with urllib.request.urlopen(request, timeout=5) as r:
        return r.status


@contextmanager
def orthanc(folder: Path, users: dict[str, str] | None = None, lua: str | None = None,
            timeout_s: float = START_TIMEOUT_S):
    """Orthanc on 127.0.0.1 with storage in ``folder``; yields an :class:`OrthancServer` once
    ``/dicom-web/studies`` answers, and stops the server on exit. ``users``: HTTP basic
    authentication with these (user: password); ``lua``: a Lua script run by Orthanc (e.g. a
    ``ReceivedInstanceFilter`` that refuses some objects, as a PACS's storage policy does)."""
    if not installed():
        raise RuntimeError(f"Orthanc is not installed ({ORTHANC}, {DICOMWEB_PLUGIN}): "
                           "apt-get install orthanc orthanc-dicomweb (scripts/setup.sh --dev does it)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = _free_port(), _free_port()
    config = folder / "orthanc.json"
    config.write_text(json.dumps(_config(folder, http_port, dicom_port, users, lua), indent=1))
    log_path = folder / "orthanc.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([ORTHANC, str(config)], cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    http_root = f"http://127.0.0.1:{http_port}"
    server = OrthancServer(http_root + "/dicom-web", http_root, dict(users or {}), log_path)
    try:
        _wait_ready(proc, server, timeout_s)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
        log.close()


def _wait_ready(proc: subprocess.Popen, server: OrthancServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {proc.returncode}: {server.log_path.read_text()[-2000:]}")
        try:
            if _get(server.url + "/studies", server.users) == 200:
                return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"Orthanc did not answer QIDO-RS within {timeout_s:.0f} s: "
                               f"{server.log_path.read_text()[-2000:]}")
        time.sleep(0.2)


def client(server: OrthancServer):
    """A dicomweb-client session on the server, with its credentials."""
    from dicomweb_client.api import DICOMwebClient
    from dicomweb_client.session_utils import create_session_from_user_pass

    session = create_session_from_user_pass(*next(iter(server.users.items()))) if server.users else None
    return DICOMwebClient(server.url, session=session)


# --------------------------------------------------------------------------- data


def mr_slice(pixels: np.ndarray, *, study_uid: str, series_uid: str, frame_uid: str, instance: int,
             position_mm: float, description: str, patient_id: str, patient_name: str, series_number: int,
             spacing_mm: float = 0.9375, thickness_mm: float = 3.0, accession: str = "ACC-0001",
             study_date: str = "20010208"):
    """One MR image (uint16, MONOCHROME2, explicit VR little endian) of an axial series."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    pixels = np.ascontiguousarray(pixels, np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = patient_name, patient_id, "", "O"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = study_date, "120000", "1", accession
    ds.ReferringPhysicianName, ds.StudyDescription = "", "MRI Insight synthetic brain MRI"
    ds.Modality, ds.SeriesNumber, ds.SeriesDescription, ds.InstanceNumber = "MR", series_number, description, instance
    ds.Manufacturer = "MRI Insight (synthetic, from a public LGG sample)"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "SE", "NONE", "", "2D"
    ds.PositionReferenceIndicator = ""
    ds.ImagePositionPatient = [-120.0, -120.0, float(position_mm)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [spacing_mm, spacing_mm]
    ds.SliceThickness = thickness_mm
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.PixelData = pixels.tobytes()
    return ds


def lgg_mr_series(patient_id: str = "SYN-0001", patient_name: str = "Synthetic^Patient") -> list[list]:
    """The bundled LGG sample as three MR series of one study (pre-contrast, FLAIR, post-contrast:
    the RGB slices' channels), slices in the sample's order at 3 mm apart, with synthetic
    identifiers and fresh UIDs. Returns one list of pydicom datasets per series."""
    from PIL import Image
    from pydicom.uid import generate_uid

    from mri_core.io.folders import list_lgg

    slices = list_lgg(LGG_SAMPLE)
    rgb = [np.asarray(Image.open(s.image_path).convert("RGB")) for s in slices]
    study_uid, frame_uid = generate_uid(), generate_uid()
    out = []
    for channel, sequence in enumerate(SEQUENCES):
        series_uid = generate_uid()
        out.append([mr_slice(image[..., channel].astype(np.uint16) * 16, study_uid=study_uid, series_uid=series_uid,
                             frame_uid=frame_uid, instance=k + 1, position_mm=3.0 * k, description=f"AX {sequence}",
                             patient_id=patient_id, patient_name=patient_name, series_number=channel + 1)
                    for k, image in enumerate(rgb)])
    return out


def pydicom_files(*names: str) -> list:
    """pydicom's own example files (``MR_small.dcm``, ``CT_small.dcm``, a JPEG one …) as datasets."""
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    return [dcmread(get_testdata_file(name)) for name in names]


def with_new_identity(ds, patient_id: str, patient_name: str = "Synthetic^Patient"):
    """``ds`` as a new image of its own study (fresh UIDs, synthetic patient): pydicom's example
    files share UIDs between their variants (MR_small.dcm and its compressed copies)."""
    from pydicom.uid import generate_uid

    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID, ds.PatientName = patient_id, patient_name
    return ds


def store(server: OrthancServer, datasets: list, batch: int = 100) -> None:
    """STOW-RS the datasets (as DICOM files), in batches."""
    from mri_core.pacs import as_part10

    datasets = [as_part10(ds) for ds in datasets]
    c = client(server)
    for start in range(0, len(datasets), batch):
        c.store_instances(datasets[start:start + batch])


def reset(server: OrthancServer) -> None:
    """Delete every study (Orthanc's REST API): a test starts from an empty PACS."""
    import requests

    auth = next(iter(server.users.items())) if server.users else None
    for study in requests.get(server.http_root + "/studies", auth=auth, timeout=10).json():
        requests.delete(f"{server.http_root}/studies/{study}", auth=auth, timeout=30)


def copy_log(server: OrthancServer, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(server.log_path, dest)


if __name__ == "__main__":  # a quick look: python -m scripts.orthanc
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, orthanc(Path(tmp)) as s:
        store(s, [ds for series in lgg_mr_series() for ds in series])
        print(s.url, len(client(s).search_for_series()), "series", os.getpid())
