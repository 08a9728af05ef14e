"""Copy a data folder for a lent GPU machine, small enough to travel with the working tree.

``python -m scripts.pack_for_device LGG_DIR .pack/lgg --quality 90`` (LGG_DIR: the lgg task's ``data_dir`` in ``mri_core.tasks``)

The device tool sends at most 64 MiB a call (tree included), and the LGG folder is 63 MB of
JPEG slices. Its layout is kept (``mri_core.data`` reads the copy exactly like the original);
only the JPEG slices are encoded again at ``--quality``; masks and CSVs are copied byte for byte.
Training on the copy is fine (the slices were JPEG already); validation figures are measured
again on the original folder on the CPU afterwards.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from PIL import Image


def pack(src: Path, dst: Path, quality: int) -> int:
    total = 0
    for path in sorted(src.rglob("*")):
        if path.is_dir():
            continue
        out = dst / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() in (".jpg", ".jpeg") and "mask" not in path.name:
            with Image.open(path) as im:
                im.save(out, "JPEG", quality=quality)
        else:
            shutil.copyfile(path, out)
        total += out.stat().st_size
    return total


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.add_argument("--quality", type=int, default=90)
    args = p.parse_args(argv)
    print(f"{pack(args.src, args.dst, args.quality) / 1e6:.1f} MB written to {args.dst}")


if __name__ == "__main__":
    main()
