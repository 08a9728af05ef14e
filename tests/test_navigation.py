"""app.py's navigation: the pages live in views/, and no pages/ folder sits beside app.py.

In Streamlit 1.67 a pages/ folder puts a fresh server in legacy multipage mode until some run
calls st.navigation (docs/architecture.md, "Why the pages live in views/"), so a folder of that name must not appear."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_pages_folder_beside_app():
    assert (ROOT / "app.py").is_file()
    assert not (ROOT / "pages").exists()


def test_every_page_file_is_in_views():
    # A page is a file of views/ that draws a page (its header); the others (navigation, scan_input, …) are helpers.
    from views.navigation import PAGES

    listed = {p.path for p in PAGES}
    assert all((ROOT / path).is_file() for path in listed)
    pages = {f"views/{p.name}" for p in (ROOT / "views").glob("*.py")
             if "page_header(__file__)" in p.read_text() or p.name == "home.py"}
    assert pages, "no page files in views/"
    assert pages <= listed, f"{sorted(pages - listed)} not in the navigation"
