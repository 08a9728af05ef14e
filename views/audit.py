"""Audit trail (admins only): every recorded event, filtered by date, event and user, as CSV; and
whether cases keep their scan's pixels, and for how long."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pandas as pd
import streamlit as st

from mri_core.store import PixelPolicy, StoreUnavailable
from mri_core.store.audit import EVENTS, MINOR_FAILURE, to_csv
from views import store_session
from views.navigation import page_header
from views.session_case import current_identity

page_header(__file__)

if not current_identity().is_admin:  # the page is not listed for them; a typed URL ends here
    store_session.audit("access-refused", outcome=MINOR_FAILURE, reason="admin-only")
    st.error("The audit trail is for admins only.")
    st.stop()

store = store_session.store()
try:
    users = store.audit_users()
    policy = store.pixel_policy()
except StoreUnavailable as error:
    st.error(f"{error} The audit trail cannot be shown just now.")
    st.stop()

today = datetime.now(timezone.utc).date()
c1, c2, c3 = st.columns([1.2, 1.5, 1.5])
days = c1.date_input("Dates (UTC)", (today - timedelta(days=7), today), key="audit_dates")
events = c2.multiselect("Events", list(EVENTS), key="audit_events", placeholder="every event")
user = c3.selectbox("User", [None, *users], key="audit_user",
                    format_func=lambda u: "every user" if u is None else f"{u[1]} ({u[0]})")
start, end = (days[0], days[-1]) if isinstance(days, (tuple, list)) and days else (today, today)
since = datetime.combine(start, time.min, timezone.utc)
until = datetime.combine(end, time.min, timezone.utc) + timedelta(days=1)
try:
    rows = store.audit_rows(since=since, until=until, events=events or None, user=user)
except StoreUnavailable as error:
    st.error(f"{error} The audit trail cannot be shown just now.")
    st.stop()

st.caption(f"{len(rows)} event(s) from {start:%Y-%m-%d} to {end:%Y-%m-%d}, oldest first. Rows cannot be changed or deleted.")
if rows:
    frame = pd.DataFrame(rows).drop(columns=["id"])
    frame["at"] = frame["at"].map(lambda t: t.strftime("%Y-%m-%d %H:%M:%S"))
    st.dataframe(frame, width="stretch", hide_index=True)
st.download_button("Download as CSV", to_csv(rows), "mri_insight_audit.csv", "text/csv", key="audit_csv",
                   on_click=store_session.audit, args=("audit-exported",), kwargs={"format": "csv", "rows": len(rows)})

st.subheader("Scan pixels in saved cases")
st.caption("Off (the default): a case keeps its masks, edits, calls and notes, and is reopened by dropping its file again. "
           "On: it also keeps the scan's pixels (no DICOM header, no patient fields) so that it opens from Cases without "
           "the file, for the retention period; turning it off deletes every kept scan.")
with st.form("audit_pixels"):
    keep = st.toggle("Keep scan pixels with saved cases", policy.store, key="audit_keep_pixels")
    retention = st.number_input("Retention (days)", 1, 3650, policy.retention_days, key="audit_retention")
    if st.form_submit_button("Save the setting"):
        try:
            store.set_pixel_policy(current_identity(), PixelPolicy(keep, int(retention)))
            store_session.audit("settings-changed", pixels_stored=keep, retention_days=int(retention))
            st.success("Saved.")
        except StoreUnavailable as error:
            st.error(f"{error} The setting was not changed.")
