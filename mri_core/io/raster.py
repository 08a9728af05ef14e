"""PNG, JPEG, BMP, GIF and WebP through Pillow; TIFF (16-bit, float, multi-page) through tifffile."""

from __future__ import annotations

import io as _io
import warnings

import numpy as np

from mri_core.io.base import (
    MAX_TOTAL_VOXELS,
    ImageStack,
    UnreadableImage,
    check_size,
    drop_gray_channels,
    finite_or_fail,
    scale_to_unit,
)
from mri_core.io.optional import require


def _open_pil(data: bytes, fmt: str, notes: list[str]):
    """Open and decode with Pillow, turning its many failures into plain-worded refusals."""
    from PIL import Image, ImageFile

    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a cut-off file must fail, not be padded with grey
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(_io.BytesIO(data))
            w, h = im.size
            check_size((h, w), "image")
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                notes.append(f"The file has {frames} frames; the first is shown.")
            im.load()
    except UnreadableImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UnreadableImage("This image declares more pixels than it can hold (a decompression bomb); it was not opened.") from None
    except OSError as exc:
        msg = str(exc).lower()
        if "truncated" in msg or "broken" in msg or "premature" in msg:
            raise UnreadableImage(f"This {fmt.upper()} file is cut off (truncated): the download or export did not finish.") from None
        # PIL's own text names an in-memory buffer ("<_io.BytesIO object at 0x...>"): say it plainly.
        raise UnreadableImage(f"This {fmt.upper()} file is damaged and cannot be decoded.") from None
    except Exception as exc:  # PIL raises many types on corrupt data
        raise UnreadableImage(f"This {fmt.upper()} file is damaged and cannot be decoded ({type(exc).__name__}).") from None
    return im


def read_pil(data: bytes, fmt: str) -> ImageStack:
    """One frame of a Pillow-readable file; 8-bit by 1/255, 16-bit and float by their range."""
    notes: list[str] = []
    im = _open_pil(data, fmt, notes)
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.array(im)
        arr = finite_or_fail(arr, notes, "image")
        arr = scale_to_unit(arr)
    elif mode in ("L", "RGB"):
        arr = scale_to_unit(np.asarray(im, dtype=np.uint8))
    elif mode == "LA":
        arr = scale_to_unit(np.asarray(im.convert("L"), dtype=np.uint8))
    else:  # P, RGBA, CMYK, YCbCr, 1, ...
        arr = scale_to_unit(np.asarray(im.convert("RGB"), dtype=np.uint8))
    slices = drop_gray_channels(arr[None])
    return ImageStack(slices=np.ascontiguousarray(slices, dtype=np.float32), format=fmt, notes=notes)


def _tiff_array(data: bytes) -> np.ndarray:
    """The first series of a TIFF, after checking its declared size before decoding it."""
    tifffile = require("tifffile")
    try:
        with tifffile.TiffFile(_io.BytesIO(data)) as tif:
            series = tif.series[0]
            shape = tuple(series.shape)
            if len(shape) < 2:
                raise UnreadableImage("This TIFF file holds no two-dimensional image.")
            color = shape[-1] in (3, 4) and len(shape) >= 3
            plane = shape[-3:-1] if color else shape[-2:]
            check_size(plane, "TIFF image")
            if int(np.prod(shape)) > MAX_TOTAL_VOXELS * (4 if color else 1):
                raise UnreadableImage("This TIFF holds more pixels than the app accepts in one file.")
            return series.asarray()
    except UnreadableImage:
        raise
    except Exception as exc:
        raise UnreadableImage(f"This TIFF file is damaged or uses an unsupported layout ({type(exc).__name__}: {exc}).") from None


def read_tiff(data: bytes) -> ImageStack:
    """Every page of a TIFF as a slice; colour kept as RGB, alpha dropped."""
    notes: list[str] = []
    arr = _tiff_array(data)
    color = arr.ndim >= 3 and arr.shape[-1] in (3, 4)
    if color:
        arr = arr[..., :3]
        arr = arr.reshape((-1,) + arr.shape[-3:])
    else:
        arr = arr.reshape((-1,) + arr.shape[-2:])
    arr = finite_or_fail(arr, notes, "TIFF image")
    arr = scale_to_unit(arr)  # 8-bit by 1/255; 16-bit and float scans stretched to their own range
    return ImageStack(slices=drop_gray_channels(arr), format="tiff", notes=notes)
