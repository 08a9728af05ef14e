"""app.py's navigation: the pages live in views/, and no pages/ folder sits beside app.py.

In Streamlit 1.67 a pages/ folder puts a fresh server in legacy multipage mode until some run
calls st.navigation (README, "Why the pages live in views/"), so a folder of that name must not appear."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_pages_folder_beside_app():
    assert (ROOT / "app.py").is_file()
    assert not (ROOT / "pages").exists()


def test_every_page_file_is_in_views():
    pages = sorted(p.name for p in (ROOT / "views").glob("*.py") if p.name not in ("__init__.py", "common.py", "auth.py"))  # auth.py: the gate app.py runs, not a page
    assert pages, "no page files in views/"
    source = (ROOT / "app.py").read_text() + (ROOT / "views" / "common.py").read_text()
    for name in pages:
        assert f"views/{name}" in source, f"views/{name} is not in the navigation"
