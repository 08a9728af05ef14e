"""Score tumour-type models on the other sources (``mri_core.shift``) and store the figures in
their cards (``metrics.cross_source``), where Home and the comparison page show them.

    python -m scripts.score_shift NAME [NAME ...]

The held-out LGG patients and OASIS subjects (the tasks' data folders, ``mri_core.tasks``) and the
web-collected tumour slices of ``../shared/data/external_dev`` (where present) are scored, the same
images for every model, so the figures compare.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from mri_core.cards import Metrics
from mri_core.models import load, read_card, write_card
from mri_core.shift import EXTERNAL_DEV, card_record, score_shift
from mri_core.tasks import get_task


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.score_shift", description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="+", metavar="NAME", help="tumour-type models to score")
    for name in p.parse_args(argv).names:
        report = score_shift(load(name), get_task("lgg").data_dir, get_task("alzheimer").data_dir,
                             external_dir=EXTERNAL_DEV if EXTERNAL_DEV.exists() else None)
        card = read_card(name)
        metrics = replace(card.metrics or Metrics(), cross_source=card_record(report))
        write_card(name, replace(card, metrics=metrics))
        print(json.dumps({"name": name, "summary": metrics.cross_source_summary.to_json()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
