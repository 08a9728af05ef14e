"""The core package stands alone: importing every mri_core module never pulls in Streamlit, and the
app never pulls in the training module mri_core.data."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import mri_core


def test_core_never_imports_streamlit():
    names = [m.name for m in pkgutil.iter_modules(mri_core.__path__)]
    code = "import sys\n" + "".join(f"import mri_core.{n}\n" for n in names) + "print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "False"
    assert {"io", "preprocess", "models", "inference", "explain", "measure", "metrics", "batch"} <= set(names)


def _app_core_modules() -> list[str]:
    """Every mri_core module app.py and the pages import, at the top or inside a function."""
    root = Path(__file__).resolve().parent.parent
    found = set()
    for path in [root / "app.py", *sorted((root / "views").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("mri_core")}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mri_core"):
                found.add(node.module)
                if node.module == "mri_core":  # from mri_core import inference, models
                    found |= {f"mri_core.{a.name}" for a in node.names}
    return sorted(found)


def test_the_app_never_imports_the_training_data_module():
    """The pages read files and folders through mri_core.io; mri_core.data (training arrays,
    caches, splits) stays out of the server process."""
    modules = _app_core_modules()
    assert {"mri_core.io", "mri_core.io.folders", "mri_core.samples", "mri_core.compare"} <= set(modules)
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print('mri_core.data' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "False"
