"""The app's pages and what every page shares above its content: the list of pages (``PAGES``),
the sidebar navigation, each page's header with the disclaimer, and the choices kept across pages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from mri_core.display import DISCLAIMER


@dataclass(frozen=True)
class PageSpec:
    path: str  # relative to app.py
    title: str
    icon: str
    group: str  # the sidebar heading it is listed under
    url_path: str | None = None  # None: the default page, at the root
    default: bool = False
    admin: bool = False  # listed for admins only


PAGES = (
    PageSpec("views/home.py", "Home", ":material/home:", "MRI Insight", default=True),
    PageSpec("views/predict.py", "Upload & predict", ":material/search:", "Read a scan", "predict"),
    PageSpec("views/mask.py", "Tumour mask", ":material/edit:", "Read a scan", "mask"),
    PageSpec("views/compare.py", "Model comparison", ":material/bar_chart:", "Models", "compare"),
    PageSpec("views/activations.py", "Activation viewer", ":material/layers:", "Models", "activations"),
    PageSpec("views/cases.py", "Cases", ":material/folder_open:", "Read a scan", "cases"),
    PageSpec("views/audit.py", "Audit trail", ":material/policy:", "Administration", "audit", admin=True),
)


def visible_pages(identity) -> list[PageSpec]:
    """The pages listed for this user (``access.Identity``): admin pages for admins only."""
    return [p for p in PAGES if identity.is_admin or not p.admin]


def navigation():
    """``st.navigation`` over the user's ``PAGES``, grouped as listed; made on every run (a page object runs once)."""
    from views.session_case import current_identity

    groups: dict[str, list] = {}
    for p in visible_pages(current_identity()):
        page = st.Page(p.path, title=p.title, icon=p.icon, default=p.default, **({"url_path": p.url_path} if p.url_path else {}))
        groups.setdefault(p.group, []).append(page)
    return st.navigation(groups)

# The choices a user makes once and expects to find again after visiting another page. Streamlit
# forgets a widget's value at the end of any run that does not draw it (every run of another
# page); setting the value again on each run makes it the session's, which is kept.
KEPT_CHOICES = ("predict_task", "predict_model_", "act_task", "act_model_", "act_only_convs", "cmp_task",
                "cmp_models_", "cmp_source", "cmp_folder", "mask_model", "mask_opacity", "mask_style", "mask_colour")


def keep_choices() -> None:
    """Carry the task, model and display choices of every page through runs of the other pages."""
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(KEPT_CHOICES)]:
        st.session_state[key] = st.session_state[key]


def page_spec(script: str) -> PageSpec:
    """The entry of ``PAGES`` for a page's script file (its ``__file__``)."""
    return next(p for p in PAGES if Path(p.path).name == Path(script).name)


def page_header(script: str) -> None:
    """A page's preamble: its title (as listed in ``PAGES``) and the disclaimer."""
    st.title(page_spec(script).title)
    st.caption(DISCLAIMER)
