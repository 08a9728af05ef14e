"""A test PACS for one machine: Debian's Orthanc on 127.0.0.1 loaded with a few series, and the app
pointed at it (``MRI_PACS_URL``); Ctrl-C stops both. Run it with ``bash scripts/run_pacs_demo.sh``.

The series: the bundled LGG sample as three MR series of one study (pre-contrast, FLAIR,
post-contrast; synthetic patient "SYN-DEMO"), and pydicom's own MR_small (as stored, and
JPEG-LS compressed) and CT_small (which the app refuses: not MR).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from scripts.orthanc import ROOT, lgg_mr_series, orthanc, pydicom_files, store, with_new_identity


def demo_datasets() -> list:
    lgg = [ds for series in lgg_mr_series(patient_id="SYN-DEMO", patient_name="Demo^Synthetic") for ds in series]
    mr, mr_jpeg_ls, ct = pydicom_files("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm", "CT_small.dcm")
    return lgg + [mr, with_new_identity(mr_jpeg_ls, "SYN-JPEGLS", "Demo^Compressed"), ct]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8501, help="the app's port (default 8501)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mri-pacs-demo-") as folder, orthanc(Path(folder)) as server:
        datasets = demo_datasets()
        store(server, datasets)
        print(f"Orthanc (DICOMweb) at {server.url}, {len(datasets)} images loaded; its own viewer at {server.http_root}/app/explorer.html",
              flush=True)
        print(f"The app: http://localhost:{args.port} -> Upload & predict or Tumour mask -> Source: From PACS. Ctrl-C stops both.",
              flush=True)
        env = dict(os.environ, MRI_PACS_URL=server.url)
        app = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(args.port)], cwd=ROOT, env=env)
        try:
            return app.wait()
        except KeyboardInterrupt:
            app.terminate()
            app.wait(timeout=20)
            return 0


if __name__ == "__main__":
    sys.exit(main())
