"""The session's cases (``mri_core.case.Case`` in ``st.session_state``): the one being read, opening
one, and who the session's user is."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from mri_core.case import Case

if TYPE_CHECKING:
    from views.scan_input import Input


MAX_CASES = 3  # cases kept per session (the current one and the last two files looked at): bounded memory


def current_case() -> Case | None:
    """The case this session is reading (the last file opened on any page), or None."""
    return st.session_state.get("cases", {}).get(st.session_state.get("case"))


def open_case(item: Input) -> Case:
    """The session's case for ``item`` (made on first sight), now the current one: every page
    reads the same scan, slice, masks and edits from it."""
    cases: dict[str, Case] = st.session_state.setdefault("cases", {})
    case = cases.pop(item.key, None)
    if case is None:
        case = Case(item.key, item.label, item.stack, index=item.stack.n_slices // 2, sample=item.sample,
                    truth=item.truth, truth_mask_path=item.mask_path)
        from views import store_session; store_session.reopen(case)  # noqa: E702  issue 28: the user's saved copy; audit
    cases[item.key] = case  # most recent last
    while len(cases) > MAX_CASES:
        cases.pop(next(iter(cases)))
    st.session_state["case"] = item.key
    return case


def current_identity():
    """The session's user (``mri_core.access.Identity``): set by the sign-in gate in ``app.py``;
    single-user mode (no sign-in configured) is ``access.SINGLE_USER``."""
    from mri_core.access import SINGLE_USER

    return st.session_state.get("identity", SINGLE_USER)
