"""Cases: the user's own saved cases (scan, masks, hand edits, calls, notes), newest first.

A case comes back with every edit when its file is dropped again on Upload & predict or Tumour
mask; where an admin has turned on keeping pixels, it can be opened from here without the file.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mri_core.store import StoreUnavailable
from views import store_session
from views.navigation import page_header
from views.session_case import current_case, current_identity

page_header(__file__)

try:
    cases = store_session.store().list_cases(current_identity())
except StoreUnavailable as error:
    st.error(f"{error} Your cases cannot be listed just now; anything open in this session is kept and saved when it is back.")
    st.stop()

open_case = current_case()
if open_case is not None and not open_case.sample:
    st.subheader("The open case")
    st.caption(f"**{open_case.name}**, slice {open_case.index + 1} of {open_case.stack.n_slices}.")
    notes = st.text_area("Notes on this case (kept with it)", store_session.record(open_case).notes, key="cases_notes",
                         max_chars=5000)
    if st.button("Save the notes", key="cases_save_notes"):
        store_session.set_notes(open_case, notes)

st.subheader("Your cases")
if not cases:
    st.info("No saved case yet. A scan you open on Upload & predict or Tumour mask is saved here with every hand edit.")
    st.stop()
table = pd.DataFrame([{
    "file": c.name, "copy": c.branch + 1, "version": c.version, "saved (UTC)": f"{c.updated_at:%Y-%m-%d %H:%M}",
    "opened first (UTC)": f"{c.created_at:%Y-%m-%d %H:%M}", "notes": c.notes,
    "pixels kept until": f"{c.pixels_until:%Y-%m-%d}" if c.has_pixels else "not kept",
} for c in cases])
st.dataframe(table, width="stretch", hide_index=True, column_config={"notes": st.column_config.TextColumn(width="large")})
st.caption("Drop a file again on Upload & predict or Tumour mask to reopen its case with every edit. A second copy of a "
           "case appears when it was saved from two sessions at once: both are kept.")

with_pixels = [c for c in cases if c.has_pixels]
if with_pixels:
    pick = st.selectbox("Open a case from its kept pixels", range(len(with_pixels)), key="cases_pick",
                        format_func=lambda i: f"{with_pixels[i].name} (copy {with_pixels[i].branch + 1}, "
                                              f"saved {with_pixels[i].updated_at:%Y-%m-%d %H:%M})")
    if st.button("Open in the mask editor", key="cases_open"):
        if store_session.open_stored(with_pixels[pick].case_id) is not None:
            st.switch_page("views/mask.py")
        st.error("This case's pixels are no longer kept: drop its file again to reopen it.")
