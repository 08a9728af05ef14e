"""How each committed model was trained, as a chain of runs, and whether the chain can be run again
from the repository and the shared data alone (``python -m scripts.training_chain [NAME ...]``).

A card records the run that wrote it (``training.command``) and the runs before it
(``training.earlier_commands``), each resuming from the last (``--init-from``). A step can be run
again where the file it starts from is made by an earlier step of the same chain (its ``--out``
folder, or ``models/NAME``, where a run without ``--out`` writes); a step that starts from an
intermediate checkpoint (a run's ``best.keras`` in a dated folder) cannot, because that file was
never kept. ``--max-minutes`` stops a run on wall time, so a rerun on another machine stops after
another number of epochs: the chain gives the recipe, not the same weights.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass

from mri_core import models


@dataclass(frozen=True)
class Step:
    command: str
    starts_from: str | None  # --init-from, where given
    writes: str  # the folder its model goes to
    rerunnable: bool  # its starting file is made by an earlier step (or it starts from scratch)
    wall_time_bound: bool


def _option(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else None


def chain(name: str, root=None) -> list[Step]:
    """The runs that made model ``name`` (in ``root``, default the models folder), oldest first, each
    said to be rerunnable or not."""
    training = models.read_card(name, root).training
    commands = [*(training.earlier_commands or ()), training.command]
    made: set[str] = set()
    steps = []
    for command in commands:
        argv = shlex.split(command)
        task_name = _option(argv, "--name") or f"{argv[argv.index('mri_core.train') + 1]}_{_option(argv, '--arch')}"
        out = _option(argv, "--out")
        writes = f"{out.rstrip('/')}/{task_name}" if out else f"models/{task_name}"
        start = _option(argv, "--init-from")
        rerunnable = start is None or start.rsplit("/", 1)[0] in made
        steps.append(Step(command, start, writes, rerunnable, "--max-minutes" in argv))
        made.add(writes)
    return steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="models (default: every committed model)")
    args = p.parse_args(argv)
    for name in args.names or models.list_models():
        steps = chain(name)
        broken = [i for i, s in enumerate(steps, 1) if not s.rerunnable]
        verdict = "can be run again in order" if not broken else f"cannot be run again as recorded: step {broken[0]} starts " \
            f"from {steps[broken[0] - 1].starts_from}, which no earlier step makes"
        print(f"{name}: {len(steps)} runs; {verdict}")
        for i, s in enumerate(steps, 1):
            print(f"  {i}. {s.command}" + ("" if s.rerunnable else "   <- its starting file was not kept"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
