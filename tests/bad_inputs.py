"""Bad and odd files a user may drop on the app, made in memory, each small and quick to make.

``bad_inputs()`` yields ``BadInput(name, data, expectation)`` tuples; ``CASES`` holds the same
cases unmade, as ``(id, filename, factory, expectation)``, for tables of parametrized tests.
``expectation`` is ``"unreadable"`` (``read_image`` must raise ``UnreadableImage``) or
``"readable"`` (it must read the file, possibly with notes). Every file is under 2 MB:
the bombs and the huge images *declare* their size and stay small (repeated deflate blocks of
zeros, or a header with no pixels behind it).
"""

from __future__ import annotations

import functools
import gzip
import io
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from factories import dicom_bytes, encode, nifti_bytes, phantom, png_bytes

UNREADABLE = "unreadable"
READABLE = "readable"

_MB = 1 << 20


class BadInput(NamedTuple):
    name: str
    data: bytes
    expectation: str


# --------------------------------------------------------------------------- building blocks


def _gray8(h: int = 96, w: int = 96, seed: int = 0) -> np.ndarray:
    return (phantom(h, w, seed=seed) * 255).astype(np.uint8)


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


@functools.lru_cache(maxsize=None)
def _zeros_block(n: int) -> bytes:
    """A self-contained, non-final, byte-aligned raw deflate block that inflates to n zero bytes."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(bytes(n)) + c.flush(zlib.Z_FULL_FLUSH)


def _raw_deflate(prefix: bytes, n_zeros: int) -> bytes:
    """Raw deflate of ``prefix`` then ``n_zeros`` zero bytes, built without holding the zeros.

    Blocks made by a fresh compressor end in a full flush, so they reference only their own
    output and may be concatenated; b"\\x03\\x00" is an empty final block.
    """
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)] if prefix else []
    parts += [_zeros_block(_MB)] * (n_zeros // _MB)
    if n_zeros % _MB:
        parts.append(_zeros_block(n_zeros % _MB))
    parts.append(b"\x03\x00")
    return b"".join(parts)


def _checksum_zeros(fn, start: int, prefix: bytes, n_zeros: int) -> int:
    value = fn(prefix, start)
    zeros = bytes(_MB)
    for _ in range(n_zeros // _MB):
        value = fn(zeros, value)
    return fn(bytes(n_zeros % _MB), value)


def _zlib_zeros(prefix: bytes, n_zeros: int) -> bytes:
    """A valid zlib stream (as in PNG's IDAT) of prefix + n_zeros zero bytes."""
    adler = _checksum_zeros(zlib.adler32, 1, prefix, n_zeros)
    return b"\x78\xda" + _raw_deflate(prefix, n_zeros) + struct.pack(">I", adler & 0xFFFFFFFF)


def _gzip_zeros(prefix: bytes, n_zeros: int) -> bytes:
    """A valid gzip member of prefix + n_zeros zero bytes (CRC and size trailer included)."""
    crc = _checksum_zeros(zlib.crc32, 0, prefix, n_zeros)
    header = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x02\xff"
    size = (len(prefix) + n_zeros) & 0xFFFFFFFF
    return header + _raw_deflate(prefix, n_zeros) + struct.pack("<II", crc & 0xFFFFFFFF, size)


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)


def _png_header(width: int, height: int, bit_depth: int = 8, colour_type: int = 0) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)


def _png_black(width: int, height: int) -> bytes:
    """A complete, valid 8-bit gray PNG of zeros, however large, in a few hundred kB."""
    idat = _zlib_zeros(b"", height * (width + 1))  # each row: filter byte 0, then zeros
    return _png_header(width, height) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _png_bomb() -> bytes:
    """Declares 30000 x 30000 pixels (900 MB) but holds one compressed row of data."""
    idat = zlib.compress(bytes(30001), 9)
    return _png_header(30000, 30000) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _tiff_header_only(width: int, height: int) -> bytes:
    """A little-endian TIFF whose one IFD declares width x height 8-bit gray, with no pixels."""
    entries = [  # (tag, type, count, value); type 3 = SHORT, 4 = LONG
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, 8 + 2 + 9 * 12 + 4),  # strip offset: just past the IFD (nothing there)
        (277, 3, 1, 1),
        (278, 4, 1, height),
        (279, 4, 1, width * height),
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        packed = struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, typ, count) + packed
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)


def _tiff(array: np.ndarray, **kw) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, array, **kw)
    return buf.getvalue()


def _float_with_nan(fraction: float, seed: int = 0) -> np.ndarray:
    a = phantom(seed=seed) * 1000.0
    if fraction >= 1.0:
        return np.full_like(a, np.nan)
    rng = np.random.default_rng(seed)
    bad = rng.random(a.shape) < fraction
    a[bad] = np.nan
    a[0, :4] = [np.inf, -np.inf, np.nan, np.inf]
    return a.astype(np.float32)


def _nifti_volume(seed: int = 0, depth: int = 4) -> np.ndarray:
    return np.stack([phantom(48, 48, seed=seed + k) for k in range(depth)], axis=-1).astype(np.float32)


def _nifti_nan(all_nan: bool) -> bytes:
    vol = _nifti_volume()
    if all_nan:
        vol[:] = np.nan
    else:
        vol[:5, :5, :] = np.nan
        vol[-3:, -3:, 0] = np.inf
    return nifti_bytes(vol)


def _nifti_corrupt_header() -> bytes:
    """A NIfTI-1 whose magic is intact but whose datatype code and dimensions are nonsense."""
    data = bytearray(nifti_bytes(_nifti_volume()))
    data[40:56] = struct.pack("<8h", 3, -48, 0, 4, 1, 1, 1, 1)  # dim: negative size
    data[70:74] = struct.pack("<hh", 9999, 7)  # datatype 9999 (unknown), bitpix 7
    return bytes(data)


def _nifti_gzip_bomb() -> bytes:
    """A .nii.gz whose header declares a small volume and whose stream inflates to 600 MB."""
    header = nifti_bytes(np.zeros((64, 64, 8), np.uint8))[:352]
    return _gzip_zeros(header, 600 * _MB)


def _nifti_gz_declares_huge() -> bytes:
    """A .nii.gz whose header declares 2048^3 float32 voxels (32 GB) and holds almost nothing."""
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape((2048, 2048, 2048))
    hdr.set_data_dtype(np.float32)
    hdr.set_data_offset(352)
    return gzip.compress(hdr.binaryblock + b"\x00" * 4 + bytes(4096))


def _dicom_gray(**kw) -> bytes:
    return dicom_bytes((phantom() * 1000).astype(np.uint16), **kw)


def _dicom_edit(data: bytes, edit: Callable) -> bytes:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data))
    edit(ds)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True, implicit_vr=False, little_endian=True)
    return buf.getvalue()


def _dicom_declares_huge() -> bytes:
    def edit(ds):
        ds.Rows = 20000
        ds.Columns = 20000

    return _dicom_edit(_dicom_gray(), edit)


def _dicom_garbage_jpeg() -> bytes:
    """Claims JPEG Baseline compression; the encapsulated 'JPEG' is random bytes."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    def edit(ds):
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelData = encapsulate([np.random.default_rng(3).bytes(4000)])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True

    return _dicom_edit(_dicom_gray(), edit)


def _dicom_unknown_syntax() -> bytes:
    """A transfer syntax UID no decoder knows, over pixel bytes that are too short."""

    def edit(ds):
        ds.file_meta.TransferSyntaxUID = "1.2.3.4.5.6.7.8.9"
        ds.PixelData = b"\x01\x02" * 50

    return _dicom_edit(_dicom_gray(), edit)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("scan.png", png_bytes(_gray8()))
        z.writestr("readme.txt", "a slice")
    return buf.getvalue()


def _pdf() -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
        b"trailer << /Root 1 0 R >>\n%%EOF\n"
    )


def _pil(array: np.ndarray | None = None, fmt: str = "PNG", mode: str | None = None, **kw) -> bytes:
    from PIL import Image

    im = Image.fromarray(_gray8() if array is None else array)
    if mode:
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _animated_gif() -> bytes:
    from PIL import Image

    frames = [Image.fromarray(_gray8(seed=k)).convert("P") for k in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def colour_photo() -> bytes:
    """Random, colourful RGB in big patches: a stand-in for a photograph, not an MRI."""
    rng = np.random.default_rng(7)
    small = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    big = np.kron(small, np.ones((16, 16, 1), np.uint8))
    big = np.clip(big.astype(np.int16) + rng.integers(-20, 21, big.shape), 0, 255).astype(np.uint8)
    return encode(big, "JPEG", quality=90)


def good_sample() -> tuple[str, bytes]:
    """A file every test can count on reading: a phantom head slice as PNG."""
    return "good_phantom.png", png_bytes(_gray8(seed=11))


# --------------------------------------------------------------------------- the table

CASES: list[tuple[str, str, Callable[[], bytes], str]] = [
    # id, filename (unique: the app names files in its errors), factory, expectation
    ("empty", "empty.png", lambda: b"", UNREADABLE),
    ("one-byte", "one_byte.dcm", lambda: b"\x00", UNREADABLE),
    ("truncated-jpeg", "cut.jpg", lambda: _half(encode(_gray8(), "JPEG", quality=95)), UNREADABLE),
    ("truncated-png", "cut.png", lambda: _half(png_bytes(_gray8())), UNREADABLE),
    ("truncated-tiff", "cut.tif", lambda: _half(_tiff(_gray8())), UNREADABLE),
    ("truncated-dicom", "cut.dcm", lambda: _half(_dicom_gray()), UNREADABLE),
    ("truncated-nifti-gz", "cut.nii.gz", lambda: _half(nifti_bytes(_nifti_volume(), gz=True)), UNREADABLE),
    ("png-named-dcm", "really_png.dcm", lambda: png_bytes(_gray8()), READABLE),
    ("jpeg-named-nii", "really_jpeg.nii", lambda: encode(_gray8(), "JPEG", quality=95), READABLE),
    ("dicom-named-png", "really_dicom.png", lambda: _dicom_gray(), READABLE),
    ("plain-text", "notes.txt", lambda: "Patient reports headaches.\nMRI requested.\n".encode(), UNREADABLE),
    ("text-no-extension", "README", lambda: b"This folder holds the MRI export.\n" * 20, UNREADABLE),
    ("text-named-nii-gz", "notes.nii.gz", lambda: b"not a volume at all\n" * 30, UNREADABLE),
    ("random-bytes-dcm", "noise.dcm", lambda: np.random.default_rng(1).bytes(5000), UNREADABLE),
    ("csv", "results.csv", lambda: b"file,prediction\nscan1.png,glioma\nscan2.png,notumor\n", UNREADABLE),
    ("pdf", "report.pdf", _pdf, UNREADABLE),
    ("zip", "scans.zip", _zip, UNREADABLE),
    ("html", "viewer.html", lambda: b"<!DOCTYPE html><html><body><img src='scan.png'></body></html>", UNREADABLE),
    ("png-decompression-bomb", "bomb_30000x30000.png", _png_bomb, UNREADABLE),
    ("nifti-gzip-bomb", "bomb.nii.gz", _nifti_gzip_bomb, UNREADABLE),
    ("nifti-gz-declares-huge", "huge_2048cubed.nii.gz", _nifti_gz_declares_huge, UNREADABLE),
    ("png-1x1", "pixel_1x1.png", lambda: png_bytes(np.full((1, 1), 128, np.uint8)), UNREADABLE),
    ("png-5x5", "icon_5x5.png", lambda: png_bytes(_gray8(5, 5)), UNREADABLE),
    ("png-6000x6000", "big_6000x6000.png", lambda: _png_black(6000, 6000), UNREADABLE),
    ("png-20000x20000", "huge_20000x20000.png", lambda: _png_black(20000, 20000), UNREADABLE),
    ("tiff-20000x20000-header", "huge_20000x20000.tif", lambda: _tiff_header_only(20000, 20000), UNREADABLE),
    ("dicom-20000x20000-header", "huge_20000x20000.dcm", _dicom_declares_huge, UNREADABLE),
    ("tiff-float-some-nan", "some_nan.tif", lambda: _tiff(_float_with_nan(0.1)), READABLE),
    ("tiff-float-all-nan", "all_nan.tif", lambda: _tiff(_float_with_nan(1.0)), UNREADABLE),
    ("nifti-some-nan-inf", "some_nan.nii", lambda: _nifti_nan(False), READABLE),
    ("nifti-all-nan", "all_nan.nii", lambda: _nifti_nan(True), UNREADABLE),
    ("nifti-4d", "fmri_4d.nii", lambda: nifti_bytes(np.stack([_nifti_volume(k) for k in range(3)], -1), zooms=(1.0, 1.0, 2.0)), READABLE),
    ("nifti-2d", "flat_2d.nii", lambda: _nifti_2d(), UNREADABLE),
    ("nifti-corrupt-header", "corrupt_header.nii", _nifti_corrupt_header, UNREADABLE),
    ("dicom-no-pixels", "no_pixels.dcm", lambda: _dicom_gray(with_pixels=False), UNREADABLE),
    ("dicom-jpeg-garbage-pixels", "garbage_jpeg.dcm", _dicom_garbage_jpeg, UNREADABLE),
    ("dicom-unknown-transfer-syntax", "unknown_syntax.dcm", _dicom_unknown_syntax, UNREADABLE),
    ("dicom-rgb", "screenshot_rgb.dcm", lambda: dicom_bytes(np.dstack([_gray8(), _gray8(seed=1), np.zeros((96, 96), np.uint8)])), READABLE),
    ("dicom-monochrome1", "mono1.dcm", lambda: _dicom_gray(photometric="MONOCHROME1"), READABLE),
    ("png-16bit", "gray16.png", lambda: png_bytes((phantom() * 65535).astype(np.uint16)), READABLE),
    ("png-palette", "palette.png", lambda: _pil(mode="P"), READABLE),
    ("png-rgba", "rgba.png", lambda: _pil(mode="RGBA"), READABLE),
    ("jpeg-cmyk", "cmyk.jpg", lambda: _pil(fmt="JPEG", mode="CMYK", quality=95), READABLE),
    ("gif", "still.gif", lambda: _pil(fmt="GIF"), READABLE),
    ("gif-animated", "animated.gif", _animated_gif, READABLE),
    ("bmp", "slice.bmp", lambda: _pil(fmt="BMP"), READABLE),
    ("colour-photo", "holiday_photo.jpg", colour_photo, READABLE),
    ("all-black", "all_black.png", lambda: png_bytes(np.zeros((96, 96), np.uint8)), READABLE),
    ("all-white", "all_white.png", lambda: png_bytes(np.full((96, 96), 255, np.uint8)), READABLE),
    ("utf8-filename", "Schädel Aufnahme é ü 脑.png", lambda: png_bytes(_gray8(seed=5)), READABLE),
]


def _nifti_2d() -> bytes:
    import nibabel as nib

    return nib.Nifti1Image(phantom(48, 48), np.eye(4)).to_bytes()


@functools.lru_cache(maxsize=None)
def make(case_id: str) -> bytes:
    """The bytes of one case, made once per process."""
    for cid, _, factory, _ in CASES:
        if cid == case_id:
            data = factory()
            assert len(data) < 20 * _MB, case_id
            return data
    raise KeyError(case_id)


def bad_inputs() -> Iterator[BadInput]:
    """Every case as (filename, bytes, expectation)."""
    for cid, name, _, expectation in CASES:
        yield BadInput(name, make(cid), expectation)


IDS = [c[0] for c in CASES]
assert len(set(IDS)) == len(IDS) and len({c[1] for c in CASES}) == len(CASES)
