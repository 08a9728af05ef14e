"""Fit a trained model's reliability checks again (out-of-distribution detector and, for a classifier, the
better-than-chance rule, ``mri_core.reliability``) on its own split, and write them beside it.

    python -m scripts.fit_reliability NAME [NAME ...]

For models trained before the checks existed; ``mri_core.train`` fits them itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from mri_core.training.refit import refit_reliability


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.fit_reliability", description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="+", metavar="NAME", help="models whose checks to fit again")
    for name in p.parse_args(argv).names:
        record = refit_reliability(name)
        print(json.dumps({"name": name, "ood": record.ood.to_json(),
                          "calls": {k: v.better_than_chance for k, v in (record.calls or {}).items()}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
