"""Packages that only some formats need (pydicom, nibabel, tifffile, highdicom), imported when a
file needs them, with an error that names what to install when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingPackage(ImportError):
    """A package a format needs is not installed; the message says what to ``pip install``."""


def require(module: str, pip_name: str | None = None) -> ModuleType:
    """Import ``module`` (dotted names too); raise :class:`MissingPackage` with a ``pip install``
    hint when it, or the package it lives in, is not installed."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or module
        if module != missing and not module.startswith(missing + "."):
            raise  # the module exists but one of its own imports is broken: not ours to rename
        package = pip_name or module.split(".")[0]
        raise MissingPackage(
            f"Reading or writing this format needs the Python package {package!r}, which is not "
            f"installed. Install it with: pip install {package}"
        ) from exc
