"""The hospital's PACS over DICOMweb (``dicomweb-client``): find a study (QIDO-RS), retrieve a
series (WADO-RS) as the files ``mri_core.io`` reads, and store results back (STOW-RS): the mask as
DICOM SEG, the measurements as a TID 1500 Structured Report, the PDF report as Encapsulated PDF.

Results stored back keep the source study's UIDs and patient module (the PACS files them with the
scan they came from); the de-identified download export (``export.mask_dicom_seg``'s default) is
unchanged. Each object goes in a new series whose description names the app and the model.

Everything that can go wrong with the server or the series ends as :class:`PacsError`, whose
message is for the user and names no patient. Functions return counts and sizes (what an audit
row needs), never UIDs or names to log. Pixels are never read here: the bytes go to ``io``.
"""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import urlparse

import numpy as np

from mri_core.io import MAX_FILE_MB, MAX_TOTAL_VOXELS, ImageStack, require

APP = "MRI Insight"
ENV_PREFIX = "MRI_PACS_"  # MRI_PACS_URL, _USERNAME, _PASSWORD, _TIMEOUT_S, _ALLOW_SEND, _MAX_MB override the secrets
CACHE_MB = 512  # series kept in memory in this process, so reopening one downloads nothing
SERIES_NUMBERS = {"SEG": 901, "SR": 902, "DOC": 903}  # high: viewers list them after the scanner's series
# Modalities of objects that are not images: listed with what they are, never opened as a scan.
NON_IMAGE = {"SR": "a structured report", "DOC": "a document (PDF)", "SEG": "a segmentation", "PR": "a presentation state",
             "KO": "a key-object selection", "RTSTRUCT": "a set of contours", "REG": "a registration",
             "OT": "an object of another kind"}
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"


class PacsError(Exception):
    """Anything the PACS or a series does wrong; ``str(exc)`` is the message for the user."""


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class PacsConfig:
    url: str  # the DICOMweb root, e.g. https://pacs.example/dicom-web
    username: str = ""
    password: str = field(default="", repr=False)
    timeout_s: float = 20.0
    allow_send: bool = True  # an admin turns storing results back off here
    max_mb: float = MAX_FILE_MB  # the largest series the app downloads (the upload limit)

    @property
    def host(self) -> str:
        """The server's name and port, as the user's messages name it."""
        return urlparse(self.url).netloc or self.url


def _flag(value) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")


def config_from(settings: Mapping, environ: Mapping[str, str] | None = None) -> PacsConfig | None:
    """The PACS settings from a mapping (the ``[pacs]`` secrets section: ``url``, ``username``,
    ``password``, ``timeout_s``, ``allow_send``, ``max_mb``), each overridden by ``MRI_PACS_<KEY>``
    in the environment; None when no URL is configured (the app then shows no PACS)."""
    environ = os.environ if environ is None else environ
    keys = ("url", "username", "password", "timeout_s", "allow_send", "max_mb")
    merged = {k: environ.get(ENV_PREFIX + k.upper(), (settings or {}).get(k)) for k in keys}
    url = str(merged["url"] or "").strip().rstrip("/")
    if not url:
        return None
    try:
        return PacsConfig(url=url, username=str(merged["username"] or ""), password=str(merged["password"] or ""),
                          timeout_s=float(merged["timeout_s"] or 20.0),
                          allow_send=True if merged["allow_send"] is None else _flag(merged["allow_send"]),
                          max_mb=float(merged["max_mb"] or MAX_FILE_MB))
    except (TypeError, ValueError) as exc:
        raise PacsError(f"The PACS settings are not valid ({exc}): timeout_s and max_mb must be numbers.") from None


def _session(config: PacsConfig):
    """A requests session (basic authentication when a user is set) that leaves QIDO-RS wildcards
    as they are: dicomweb-client percent-encodes ``*`` and ``?``, which RFC 3986 allows in a query
    unencoded, and Orthanc 1.10 (Debian's) then matches them literally."""
    import requests

    class WildcardSession(requests.Session):
        def send(self, request, **kwargs):
            base, sep, query = request.url.partition("?")
            if sep:
                request.url = base + sep + query.replace("%2A", "*").replace("%3F", "?")
            return super().send(request, **kwargs)

    session = WildcardSession()
    if config.username:
        session.auth = (config.username, config.password)
    return session


def _client(config: PacsConfig):
    from dicomweb_client.api import DICOMwebClient

    c = DICOMwebClient(config.url, session=_session(config), timeout=config.timeout_s)
    c.set_http_retry_params(retry=False)  # a user waits on it: one try, then a message
    return c


@contextmanager
def _talking(config: PacsConfig, doing: str):
    """Turn whatever the HTTP layer raises while ``doing`` into a :class:`PacsError` for the user."""
    import requests

    invalid_dicom = require("pydicom.errors", "pydicom").InvalidDicomError
    try:
        yield
    except PacsError:
        raise
    except invalid_dicom:  # e.g. a part that is not a DICOM file (no preamble) from a non-conformant server
        raise PacsError(f"The PACS ({config.host}) sent an object that is not a DICOM file while {doing}.") from None
    except requests.exceptions.Timeout:
        raise PacsError(f"The PACS ({config.host}) did not answer within {config.timeout_s:g} s while {doing}. "
                        "Try again, or ask IT whether it is up.") from None
    except requests.exceptions.HTTPError as exc:
        raise PacsError(_http_message(config, exc.response.status_code if exc.response is not None else 0, doing)) from None
    except requests.exceptions.ConnectionError:
        raise PacsError(f"The PACS ({config.host}) cannot be reached while {doing}: check the address, "
                        "the network, or whether the server is running.") from None
    except (requests.exceptions.RequestException, ValueError, KeyError, TypeError) as exc:
        raise PacsError(f"The PACS ({config.host}) sent an answer the app cannot read while {doing} "
                        f"({type(exc).__name__}).") from None


def _http_message(config: PacsConfig, status: int, doing: str) -> str:
    if status in (401, 403):
        return (f"The PACS ({config.host}) refused the credentials while {doing} (HTTP {status}): "
                "check the user name and password in the app's PACS settings.")
    if status == 404:
        return f"The PACS ({config.host}) does not have what was asked for while {doing} (HTTP 404): it may have been deleted."
    return f"The PACS ({config.host}) answered with an error while {doing} (HTTP {status})."


# --------------------------------------------------------------------------- search


@dataclass(frozen=True)
class Study:
    uid: str
    patient_id: str
    patient_name: str
    date: str  # YYYY-MM-DD, or ""
    description: str
    accession: str
    modalities: str
    n_series: int | None
    n_instances: int | None


@dataclass(frozen=True)
class Series:
    study_uid: str
    uid: str
    number: int | None
    modality: str
    description: str
    n_instances: int | None

    @property
    def refusal(self) -> str:
        """Why the app will not open this series as a scan ("" when it will)."""
        if self.modality in NON_IMAGE:
            return f"This series is {NON_IMAGE[self.modality]} ({self.modality}), not images: there is nothing to read."
        if self.modality != "MR":
            return (f"This series is {self.modality or 'of unknown modality'}, not MR: the models read brain MRI only, "
                    "so it is not opened.")
        return ""

    @property
    def label(self) -> str:
        n = "? images" if self.n_instances is None else f"{self.n_instances} image{'s' if self.n_instances != 1 else ''}"
        return f"{self.description or 'no description'} ({self.modality}, {n})"


def _value(item: Mapping, keyword: str) -> str:
    """A QIDO-RS JSON attribute as text (a person name's alphabetic form)."""
    from pydicom.datadict import tag_for_keyword

    element = item.get(f"{tag_for_keyword(keyword):08X}", {})
    values = element.get("Value") or []
    if not values:
        return ""
    v = values[0]
    return str(v.get("Alphabetic", "")) if isinstance(v, dict) else "\\".join(str(x) for x in values)


def _int(item: Mapping, keyword: str) -> int | None:
    text = _value(item, keyword)
    try:
        return int(text)
    except ValueError:
        return None


def _date_text(d: str) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else d


def _study_filters(patient_id: str, patient_name: str, date_from: date | None, date_to: date | None, modality: str,
                   accession: str) -> dict[str, str]:
    filters = {}
    if patient_id.strip():
        filters["PatientID"] = patient_id.strip()
    if patient_name.strip():
        # Any part of the name, in any case; "doe jane" and "Doe^Jane" both find DOE^JANE.
        words = [w for w in patient_name.replace("^", " ").replace(",", " ").split() if w]
        filters["PatientName"] = "*" + "*".join(words) + "*"
    if date_from or date_to:
        filters["StudyDate"] = f"{date_from.strftime('%Y%m%d') if date_from else ''}-{date_to.strftime('%Y%m%d') if date_to else ''}"
    if modality.strip():
        filters["ModalitiesInStudy"] = modality.strip().upper()
    if accession.strip():
        filters["AccessionNumber"] = accession.strip()
    return filters


STUDY_FIELDS = ("StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")


def search_studies(config: PacsConfig, *, patient_id: str = "", patient_name: str = "", date_from: date | None = None,
                   date_to: date | None = None, modality: str = "", accession: str = "", limit: int = 100) -> list[Study]:
    """The studies matching every given field (QIDO-RS; a name matches anywhere in it, case aside),
    newest first; PacsError when none does."""
    filters = _study_filters(patient_id, patient_name, date_from, date_to, modality, accession)
    with _talking(config, "searching for studies"):
        items = _client(config).search_for_studies(search_filters=filters, fields=list(STUDY_FIELDS), limit=limit)
    if not items:
        raise PacsError("No study on the PACS matches this search." + (" Widen it (fewer fields, a wider date range)."
                                                                        if filters else ""))
    studies = [Study(_value(i, "StudyInstanceUID"), _value(i, "PatientID"), _value(i, "PatientName"),
                     _date_text(_value(i, "StudyDate")), _value(i, "StudyDescription"), _value(i, "AccessionNumber"),
                     _value(i, "ModalitiesInStudy"), _int(i, "NumberOfStudyRelatedSeries"),
                     _int(i, "NumberOfStudyRelatedInstances")) for i in items]
    return sorted(studies, key=lambda s: s.date, reverse=True)


def list_series(config: PacsConfig, study_uid: str) -> list[Series]:
    """The study's series (description, modality, number of images), in series-number order."""
    with _talking(config, "listing the study's series"):
        items = _client(config).search_for_series(
            study_uid, fields=["SeriesDescription", "Modality", "SeriesNumber", "NumberOfSeriesRelatedInstances"])
    if not items:
        raise PacsError("This study has no series on the PACS.")
    series = [Series(study_uid, _value(i, "SeriesInstanceUID"), _int(i, "SeriesNumber"), _value(i, "Modality"),
                     _value(i, "SeriesDescription"), _int(i, "NumberOfSeriesRelatedInstances")) for i in items]
    return sorted(series, key=lambda s: (s.number is None, s.number or 0))


# --------------------------------------------------------------------------- retrieve


@dataclass(frozen=True)
class Retrieved:
    """A series' files as ``io.read_images`` reads them, named without any identifier."""

    files: tuple[tuple[str, bytes], ...]
    n_bytes: int
    downloaded: bool  # False: taken from this process's cache, no new download


class _SeriesCache:
    """The series fetched in this process, newest last, up to ``CACHE_MB`` in all."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit, self.items, self.lock = limit_bytes, OrderedDict(), threading.Lock()

    def get(self, key) -> tuple | None:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
            return None

    def put(self, key, files: tuple) -> None:
        with self.lock:
            self.items[key] = files
            while len(self.items) > 1 and sum(len(d) for f in self.items.values() for _, d in f) > self.limit:
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


CACHE = _SeriesCache(CACHE_MB * 2**20)


def _values(item: Mapping, keyword: str) -> list:
    from pydicom.datadict import tag_for_keyword

    return list(item.get(f"{tag_for_keyword(keyword):08X}", {}).get("Value") or [])


def _expected_bytes(meta: list[Mapping]) -> tuple[int, int]:
    """(bytes, voxels) of the series' pixels as the headers describe them, before any download."""
    n_bytes = n_voxels = 0
    for item in meta:
        rows, cols = _int(item, "Rows") or 0, _int(item, "Columns") or 0
        frames, samples = _int(item, "NumberOfFrames") or 1, _int(item, "SamplesPerPixel") or 1
        n_voxels += rows * cols * frames
        n_bytes += rows * cols * frames * samples * ((_int(item, "BitsAllocated") or 16) // 8)
    return n_bytes, n_voxels


def _slice_problem(meta: list[Mapping]) -> str:
    """Why the series' images are not one clean stack of slices ("" when they are): no pixels,
    mixed sizes, two images at one position (duplicates), or a gap (missing slices)."""
    if any(not _int(i, "Rows") for i in meta):
        return "Some objects in this series hold no image (a report or document filed with the images)."
    sizes = {(_int(i, "Rows"), _int(i, "Columns")) for i in meta}
    if len(sizes) > 1:
        listed = ", ".join(f"{c}x{r}" for r, c in sorted(sizes, key=str))
        return f"The images of this series have different sizes ({listed} px), so they are not one stack of slices."
    if len({_value(i, "SOPInstanceUID") for i in meta}) < len(meta):
        return "The PACS lists the same image twice in this series (duplicate slices)."
    positions = _positions(meta)
    if positions is None or len(positions) < 3:
        return ""
    gaps = np.diff(np.sort(positions))
    if np.any(gaps < 0.01):
        return "Two images of this series lie at the same position (duplicate slices): the series cannot be read as one volume."
    step = float(np.median(gaps))
    if gaps.max() > 1.5 * step:
        missing = int(round(gaps.max() / step)) - 1
        return (f"Slices are missing from this series: a gap of {gaps.max():.1f} mm where it steps {step:.1f} mm "
                f"(about {missing} slice{'s' if missing > 1 else ''}). Ask for the complete series.")
    return ""


def _positions(meta: list[Mapping]) -> np.ndarray | None:
    """Each single-frame image's position along the slice normal; None when one does not say."""
    out = []
    for item in meta:
        iop, ipp = _values(item, "ImageOrientationPatient"), _values(item, "ImagePositionPatient")
        if len(iop) != 6 or len(ipp) != 3 or (_int(item, "NumberOfFrames") or 1) > 1:
            return None
        out.append(float(np.dot(np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float)), np.asarray(ipp, float))))
    return np.asarray(out)


def _check_plan(config: PacsConfig, meta: list[Mapping]) -> int:
    """Refuse, before downloading, a series that is empty, not a clean stack, or over the limits;
    returns its expected size in bytes."""
    if not meta:
        raise PacsError("This series holds no images on the PACS.")
    problem = _slice_problem(meta)
    if problem:
        raise PacsError(problem)
    n_bytes, n_voxels = _expected_bytes(meta)
    limit = config.max_mb * 2**20
    if n_bytes > limit or n_voxels > MAX_TOTAL_VOXELS:
        raise PacsError(f"This series is too large to open here: {len(meta)} images, about {n_bytes / 2**20:.0f} MB of pixels; "
                        f"the limit is {config.max_mb:g} MB ({MAX_TOTAL_VOXELS / 1e6:.0f} million pixels). "
                        "Open a smaller series, or ask for a reformatted one.")
    return n_bytes


def _part10(ds) -> bytes:
    """One instance as a DICOM file (its own transfer syntax, compressed or not: ``io`` decodes it)."""
    pydicom = require("pydicom")
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def _download(config: PacsConfig, client, series: Series, n_expected: int,
              progress: Callable[[float], None]) -> tuple[tuple[str, bytes], ...]:
    """WADO-RS in the stored transfer syntax, instance by instance, stopped as soon as the bytes
    pass the limit."""
    limit, total, files = config.max_mb * 2**20, 0, []
    with _talking(config, "downloading the series"):
        instances = client.iter_series(series.study_uid, series.uid, media_types=(("application/dicom", "*"),))
        for k, ds in enumerate(instances):
            data = _part10(ds)
            total += len(data)
            if total > limit:
                raise PacsError(f"This series passed the {config.max_mb:g} MB limit while downloading "
                                f"({k + 1} of {n_expected} images): it is not opened.")
            files.append((f"pacs_{k + 1:04d}.dcm", data))
            progress(min(len(files) / n_expected, 1.0))
    if len(files) != n_expected:
        raise PacsError(f"The PACS sent {len(files)} of the {n_expected} images it lists for this series: "
                        "slices are missing, so it is not opened. Try again.")
    return tuple(files)


def retrieve_series(config: PacsConfig, series: Series, progress: Callable[[float], None] | None = None) -> Retrieved:
    """The series' instances as (name, bytes), checked before the download (an image series of MR,
    one clean stack, within ``config.max_mb``) and during it; ``progress`` gets the fraction done.
    A series fetched before in this process comes from the cache, with no new download."""
    progress = progress or (lambda fraction: None)
    if series.refusal:
        raise PacsError(series.refusal)
    key = (config.url, series.study_uid, series.uid)
    cached = CACHE.get(key)
    if cached is not None:
        progress(1.0)
        return Retrieved(cached, sum(len(d) for _, d in cached), downloaded=False)
    client = _client(config)
    with _talking(config, "reading the series' headers"):
        meta = client.retrieve_series_metadata(series.study_uid, series.uid)
    _check_plan(config, meta)
    files = _download(config, client, series, len(meta), progress)
    CACHE.put(key, files)
    return Retrieved(files, sum(len(d) for _, d in files), downloaded=True)


def refusal_of(stack: ImageStack) -> str:
    """Why a series read from the PACS is not opened as the case ("" when it is): it must be MR
    (checked again on the files themselves, whatever the PACS listed)."""
    if stack.modality != "MR":
        return f"This series is {stack.modality or 'of unknown modality'}, not MR: the models read brain MRI only."
    return ""


# --------------------------------------------------------------------------- store back


def series_description(what: str, model_name: str, edited: bool = False) -> str:
    """The new series' description: the app, the model and what it holds (LO: 64 characters)."""
    return f"{APP} {model_name}: {what}{', edited by hand' if edited else ''}"[:64]


@dataclass(frozen=True)
class Findings:
    """What the measurement report states for one slice of the case (the mask page's figures)."""

    slice_index: int  # 0-based
    measurements: Mapping  # ``measure.Measurements.as_dict()`` of the slice's mask
    volume_ml: float | None
    tumour_present: bool | None  # None: the model cannot judge the slice (no call)
    model_name: str
    model_version: str  # ``LoadedModel.version``: the weights' short hash
    origin: str = "AUTOMATIC"  # ``Case.mask_origin``: AUTOMATIC, SEMIAUTOMATIC (edited by hand) or MANUAL
    editor: str = ""  # the signed-in person who edited the mask ("" when none)

    @property
    def edited(self) -> bool:
        return self.origin != "AUTOMATIC"


def person_name(display_name: str) -> str:
    """A display name ("Jane Doe") as a DICOM person name: the whole name as one component (a
    trailing caret says so), since the app cannot tell which part is the family name."""
    name = display_name.strip()
    return name if "^" in name or not name else name + "^"


def seg_for_pacs(masks: np.ndarray, stack: ImageStack, findings: Findings):
    """The case's masks as a DICOM SEG for the PACS the scan came from: the source study's UIDs and
    patient module, a new series, the mask's origin (SEMIAUTOMATIC or MANUAL once edited by hand)
    and the editor's name."""
    from mri_core import export

    pydicom = require("pydicom")
    try:
        data = export.mask_dicom_seg(masks, stack, f"{APP} {findings.model_name}", findings.model_version,
                                     origin=findings.origin, creator=person_name(findings.editor) or None, deidentify=False,
                                     series_description=series_description("tumour mask", findings.model_name, findings.edited))
    except ValueError as exc:
        raise PacsError(f"The mask cannot be made into a DICOM SEG for the PACS: {exc}") from None
    seg = pydicom.dcmread(io.BytesIO(data))
    seg.SeriesNumber = SERIES_NUMBERS["SEG"]
    return seg


def _codes():
    hd = require("highdicom")
    codes = require("pydicom.sr.codedict", "pydicom").codes
    concept = hd.sr.CodedConcept
    return hd, codes, {
        "presence": concept("705057003", "SCT", "Presence"),
        "procedure": concept("24590-2", "LN", "MR Brain"),
        "mL": concept("mL", "UCUM", "milliliter"),
        "px": concept("{pixels}", "UCUM", "pixels"),
        "px2": concept("{pixels}", "UCUM", "pixels"),
        "unknown": concept("261665006", "SCT", "Unknown"),
    }


def _observation_context(hd, codes, findings: Findings):
    device = hd.sr.ObserverContext(codes.DCM.Device, hd.sr.DeviceObserverIdentifyingAttributes(
        uid=hd.UID(), name=findings.model_name, manufacturer_name=APP, model_name=findings.model_version))
    person = hd.sr.ObserverContext(codes.DCM.Person, hd.sr.PersonObserverIdentifyingAttributes(
        name=person_name(findings.editor))) if findings.editor else None
    return hd.sr.ObservationContext(observer_person_context=person, observer_device_context=device)


def _slice_measurements(hd, codes, extra, findings: Findings, algorithm) -> list:
    m = findings.measurements
    in_mm = m.get("area_mm2") is not None
    figures = [(codes.SCT.Area, m["area_mm2"] if in_mm else m["area_px"], codes.UCUM.SquareMillimeter if in_mm else extra["px2"]),
               (codes.SCT.LongAxis, m["longest_diameter_mm"] if in_mm else m["longest_diameter_px"],
                codes.UCUM.Millimeter if in_mm else extra["px"]),
               (codes.SCT.ShortAxis, m["perpendicular_diameter_mm"] if in_mm else m["perpendicular_diameter_px"],
                codes.UCUM.Millimeter if in_mm else extra["px"])]
    return [hd.sr.Measurement(name=name, value=float(value), unit=unit, algorithm_id=algorithm) for name, value, unit in figures]


def _presence(hd, codes, extra, findings: Findings):
    value = (extra["unknown"] if findings.tumour_present is None
             else codes.SCT.Present if findings.tumour_present else codes.SCT.Absent)
    return hd.sr.QualitativeEvaluation(extra["presence"], value)


def _source_for(hd, stack: ImageStack, index: int):
    """The source image (and frame) of slice ``index``, as the SR references it."""
    sources = stack.dicom_sources
    if len(sources) == 1 and stack.n_slices > 1:
        ds = sources[0]
        return hd.sr.SourceImageForSegmentation(ds.SOPClassUID, ds.SOPInstanceUID, referenced_frame_numbers=[index + 1])
    return hd.sr.SourceImageForSegmentation.from_source_image(sources[index])


def measurement_report(seg, stack: ImageStack, findings: Findings):
    """A TID 1500 measurement report (highdicom's ``sr``) on the SEG: the slice's area, long and
    short axis (a planar group on the SEG's frame for that slice), the volume over the scan (a
    volumetric group on the whole segment), the tumour-presence call, the model and its version."""
    hd, codes, extra = _codes()
    algorithm = hd.sr.AlgorithmIdentification(name=findings.model_name, version=findings.model_version)
    segment = hd.sr.ReferencedSegmentationFrame(seg.SOPClassUID, seg.SOPInstanceUID, findings.slice_index + 1, 1,
                                                _source_for(hd, stack, findings.slice_index))
    planar = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"Tumour, slice {findings.slice_index + 1}"),
        referenced_segment=segment, finding_type=codes.SCT.Neoplasm, algorithm_id=algorithm,
        measurements=_slice_measurements(hd, codes, extra, findings, algorithm),
        qualitative_evaluations=[_presence(hd, codes, extra, findings)])
    groups = [planar]
    if findings.volume_ml is not None:
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="Tumour, whole scan"),
            # Built by hand: highdicom 0.28's from_segmentation looks for the segment in each frame's
            # groups, and a one-segment SEG keeps it in the shared groups.
            referenced_segment=hd.sr.ReferencedSegment(seg.SOPClassUID, seg.SOPInstanceUID, 1, source_series=(
                hd.sr.SourceSeriesForSegmentation(str(stack.dicom_sources[0].SeriesInstanceUID)))),
            finding_type=codes.SCT.Neoplasm, algorithm_id=algorithm,
            measurements=[hd.sr.Measurement(codes.SCT.Volume, float(findings.volume_ml), extra["mL"], algorithm_id=algorithm)]))
    report = hd.sr.MeasurementReport(observation_context=_observation_context(hd, codes, findings),
                                     procedure_reported=extra["procedure"], imaging_measurements=groups)
    sources = stack.dicom_sources
    return hd.sr.Comprehensive3DSR(
        evidence=[*sources, seg], content=report, series_instance_uid=hd.UID(), series_number=SERIES_NUMBERS["SR"],
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=APP,
        series_description=series_description("measurements", findings.model_name, findings.edited))


def read_measurement_report(ds) -> dict:
    """The figures a measurement report made by :func:`measurement_report` states: {"Area": (value,
    unit), "Long axis": …, "Short axis": …, "Volume": …, "Presence": meaning}, plus the model and
    version it names."""
    hd = require("highdicom")
    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    report = sr.content
    out: dict = {}
    groups = [*report.get_planar_roi_measurement_groups(), *report.get_volumetric_roi_measurement_groups()]
    for group in groups:
        for m in group.get_measurements():
            out[m.name.meaning] = (float(m.value), m.unit.value)
            for item in getattr(m[0], "ContentSequence", []):  # m: the NUM item in a sequence
                code = item.ConceptNameCodeSequence[0].CodeValue
                if code in ("111001", "111003"):  # DCM Algorithm Name, Algorithm Version
                    out["model" if code == "111001" else "version"] = str(item.TextValue)
        for q in group.get_qualitative_evaluations():
            out[q.name.meaning] = q.value.meaning
    return out


def encapsulated_pdf(pdf: bytes, stack: ImageStack, model_name: str, edited: bool = False):
    """The PDF report as an Encapsulated PDF object in the source study (its UIDs and patient
    module), in a new series."""
    from mri_core.export import _PATIENT_STUDY

    dataset = require("pydicom.dataset", "pydicom")
    uid = require("pydicom.uid", "pydicom")
    source = stack.dicom_sources[0]
    ds = dataset.Dataset()
    ds.file_meta = dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = ENCAPSULATED_PDF, uid.generate_uid()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    for keyword in ("StudyInstanceUID", *_PATIENT_STUDY):
        if keyword in source:
            setattr(ds, keyword, source.data_element(keyword).value)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
                    "AccessionNumber", "ReferringPhysicianName"):
        if keyword not in ds:
            setattr(ds, keyword, "")
    now = require("datetime").datetime.now()
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber, ds.Modality = uid.generate_uid(), SERIES_NUMBERS["DOC"], 1, "DOC"
    ds.SeriesDescription = series_description("PDF report", model_name, edited)
    ds.Manufacturer, ds.ConversionType, ds.BurnedInAnnotation = APP, "WSD", "NO"
    ds.ContentDate, ds.ContentTime, ds.AcquisitionDateTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S"), now.strftime("%Y%m%d%H%M%S")
    ds.DocumentTitle, ds.ConceptNameCodeSequence = f"{APP} report", []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    return ds


@dataclass(frozen=True)
class Stored:
    """What a send stored: counts and sizes (what an audit row needs), no identifier."""

    n_objects: int
    n_bytes: int
    kinds: tuple[str, ...]  # "SEG", "SR", "PDF"


def as_part10(ds):
    """Make ``ds`` a DICOM file when written: dicomweb-client's STOW-RS writes each dataset as it
    is, and one built in memory has no preamble, which a PACS (Orthanc) then stores and serves
    back as an object that DICOM readers refuse."""
    dataset = require("pydicom.dataset", "pydicom")
    ds.preamble = b"\0" * 128
    meta = getattr(ds, "file_meta", None) or dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    if "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = require("pydicom.uid", "pydicom").ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def _kind(ds) -> str:
    return {"SEG": "SEG", "SR": "SR", "DOC": "PDF"}.get(str(ds.Modality), str(ds.Modality))


def _not_listed(client, datasets: list) -> set[str]:
    """The SOP instance UIDs of objects the PACS acknowledged but does not list: a storage policy
    may drop an object after the STOW-RS answer said it was taken (Orthanc 1.10's DICOMweb plugin
    reports an object its Lua filter refused as stored)."""
    missing = set()
    for ds in datasets:
        found = client.search_for_instances(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                                            search_filters={"SOPInstanceUID": str(ds.SOPInstanceUID)})
        if not found:
            missing.add(str(ds.SOPInstanceUID))
    return missing


def store(config: PacsConfig, datasets: list) -> Stored:
    """STOW-RS the objects into their study; PacsError when sending is off, or when the PACS refuses
    any of them (saying which were stored and which were not)."""
    if not config.allow_send:
        raise PacsError("Sending results to the PACS is turned off in this app's settings.")
    for ds in datasets:
        as_part10(ds)
    study = str(datasets[0].StudyInstanceUID)
    sizes = {str(ds.SOPInstanceUID): len(_part10(ds)) for ds in datasets}
    client = _client(config)
    with _talking(config, "storing the results"):
        response = client.store_instances(datasets, study_instance_uid=study)
        failed = {str(item.get("ReferencedSOPInstanceUID", "")) for item in response.get("FailedSOPSequence", [])}
        failed |= _not_listed(client, [ds for ds in datasets if str(ds.SOPInstanceUID) not in failed])
    if failed:
        refused = [_kind(ds) for ds in datasets if str(ds.SOPInstanceUID) in failed]
        kept = [_kind(ds) for ds in datasets if str(ds.SOPInstanceUID) not in failed]
        raise PacsError(f"The PACS refused to store {', '.join(refused)}" + (f" (it stored {', '.join(kept)})" if kept else "")
                        + ". Nothing else was changed on the PACS; download the results here instead.")
    return Stored(len(datasets), sum(sizes.values()), tuple(_kind(ds) for ds in datasets))


def send_results(config: PacsConfig, masks: np.ndarray, stack: ImageStack, findings: Findings, pdf: bytes) -> Stored:
    """The case's SEG, measurement report and PDF report, made and stored in one STOW-RS request."""
    seg = seg_for_pacs(masks, stack, findings)
    try:
        sr = measurement_report(seg, stack, findings)
    except (ValueError, TypeError, AttributeError) as exc:
        raise PacsError(f"The measurement report cannot be made for this series ({exc}).") from None
    return store(config, [seg, sr, encapsulated_pdf(pdf, stack, findings.model_name, findings.edited)])
