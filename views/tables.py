"""Tables the dashboards share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mri_core.cards import Card

if TYPE_CHECKING:
    import pandas as pd


def side_by_side(rows: list[dict], key: str = "model") -> "pd.DataFrame":
    """Rows of one dict per model as a table with one column per model and one row per field (as
    text): a dozen fields for two or three models fit the page's width instead of running off it."""
    import pandas as pd

    def text(v):
        return "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    return pd.DataFrame({r[key]: {k: text(v) for k, v in r.items() if k != key} for r in rows})

def cross_source_rows(cards: dict[str, Card]) -> list[dict]:
    """One row per model and other source (``metrics.cross_source`` in the cards, from
    ``scripts/score_shift.py``): sensitivity, specificity and abstentions, each with its split."""
    rows = []
    for name, card in cards.items():
        for source, block in (card.metrics.other_sources if card.metrics else {}).items():
            pct = lambda v: "–" if v is None else f"{v:.0%}"  # noqa: E731
            rows.append({"model": name, "source": source, "sensitivity": pct(block.sensitivity),
                         "specificity": pct(block.specificity), "abstained": pct(block.abstained),
                         "wrong calls abstained or warned": pct(block.wrong_abstained_or_warned),
                         "images": block.n, "split": block.split})
    return rows
