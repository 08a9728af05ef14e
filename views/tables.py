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


def cross_source_rows(cards: dict[str, Card]) -> tuple[list[dict], dict[str, str]]:
    """(one row per model and other source, each source's split) from ``metrics.cross_source`` in the
    cards (``scripts/score_shift.py``): sensitivity, specificity and abstentions in narrow columns,
    the splits' long descriptions apart, so the table fits the page's width."""
    rows, splits = [], {}
    for name, card in cards.items():
        for source, block in (card.metrics.other_sources if card.metrics else {}).items():
            pct = lambda v: "–" if v is None else f"{v:.0%}"  # noqa: E731
            rows.append({"model": name, "source": source, "sensitivity": pct(block.sensitivity),
                         "specificity": pct(block.specificity), "abstained": pct(block.abstained),
                         "wrong calls abstained or warned": pct(block.wrong_abstained_or_warned), "images": block.n})
            splits.setdefault(source, block.split)
    return rows, splits


def cross_source_table(cards: dict[str, Card]) -> None:
    """The other-sources table with each source's split said under it (Home and Model comparison)."""
    import pandas as pd
    import streamlit as st

    rows, splits = cross_source_rows(cards)
    if not rows:
        return
    st.markdown("*On scans from other sources* (tumour or not; never trained on these patients or subjects):")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(" · ".join(f"**{source}**: {split}" for source, split in splits.items()))
