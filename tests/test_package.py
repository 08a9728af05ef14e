"""The core package stands alone: importing every mri_core module never pulls in Streamlit."""

import pkgutil
import subprocess
import sys

import mri_core


def test_core_never_imports_streamlit():
    names = [m.name for m in pkgutil.iter_modules(mri_core.__path__)]
    code = "import sys\n" + "".join(f"import mri_core.{n}\n" for n in names) + "print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "False"
    assert {"io", "preprocess", "models", "inference", "explain", "measure", "metrics", "batch"} <= set(names)
