"""mri_core.io.optional: a missing package is named with the ``pip install`` that brings it."""

from __future__ import annotations

import sys

import pytest

from mri_core.io import MissingPackage, require


def test_require_returns_the_module():
    import json
    import os.path

    assert require("json") is json
    assert require("os.path") is os.path


def test_a_missing_package_names_its_pip_install():
    with pytest.raises(MissingPackage, match=r"pip install mri-insight-no-such-package") as info:
        require("mri_insight_no_such_module", "mri-insight-no-such-package")
    assert isinstance(info.value, ImportError)


def test_the_pip_name_defaults_to_the_top_package():
    with pytest.raises(MissingPackage, match=r"pip install mri_insight_no_such_module$"):
        require("mri_insight_no_such_module.sub")


def test_a_broken_import_inside_an_installed_module_is_not_renamed(tmp_path, monkeypatch):
    (tmp_path / "mri_insight_broken.py").write_text("import mri_insight_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mri_insight_broken", raising=False)
    with pytest.raises(ModuleNotFoundError) as info:
        require("mri_insight_broken")
    assert not isinstance(info.value, MissingPackage)
    assert info.value.name == "mri_insight_no_such_dependency"
