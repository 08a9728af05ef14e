"""In Chromium against `streamlit run`: a hand-edited case survives a reload and a server restart
on the same SQLite file, and the whole path (upload, model, edit, download) is in the audit trail
with no patient identifier (issue 28)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from bench.harness import CHROMIUM, ERRORS_JS, VIEWPORT, launch_options, serve  # noqa: E402
from mri_core.access import SINGLE_USER  # noqa: E402
from mri_core.store import URL_ENV, Store  # noqa: E402

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

from test_browser import IDLE, METRIC_JS, SHOTS, WAIT_MS  # noqa: E402
from test_store_pages import FILE_NAME, IDENTIFIERS, SCAN  # noqa: E402

UPLOAD = '.st-key-mask_upload input[type="file"]'


def open_scan(page, url: str) -> str:
    """The mask page with the scan dropped on it; returns the Area metric once the page settles."""
    page.goto(url + "/mask", timeout=WAIT_MS)
    page.locator(UPLOAD).set_input_files({"name": FILE_NAME, "mimeType": "application/dicom", "buffer": SCAN})
    expect(page.locator('[data-testid="stFileChipName"]')).to_contain_text(".dcm")  # the chip shortens the name
    # the scan's Area is in mm² (a DICOM gives its spacing); the bundled sample's, shown before, in px
    return page.wait_for_function(f"() => {{ const v = ({METRIC_JS})('Area'); return v && v.endsWith('mm²') ? v : null; }}",
                                  timeout=WAIT_MS, polling=200).json_value()


def brush_stroke(page) -> None:
    page.get_by_text("Correct by hand", exact=True).click()
    canvas = page.locator('[class*="st-key-mask_canvas_"] canvas.upper-canvas')
    expect(canvas).to_be_visible()
    page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)
    box = canvas.bounding_box()
    y = box["y"] + box["height"] * 0.25
    page.mouse.move(box["x"] + box["width"] * 0.15, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.85, y + box["height"] * 0.1, steps=15)
    page.mouse.up()


def test_a_hand_edit_survives_a_reload_and_a_server_restart(use_tiny_models, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'data' / 'mri_insight.db'}"
    monkeypatch.setenv(URL_ENV, url)  # both servers below, one file
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(**launch_options())
        page = browser.new_context(viewport=VIEWPORT, accept_downloads=True).new_page()
        page.set_default_timeout(WAIT_MS)
        with serve(use_tiny_models) as server:
            before = open_scan(page, server.url)
            brush_stroke(page)
            edited = page.wait_for_function(
                f"(b) => {{ const v = ({METRIC_JS})('Area'); return v !== null && v !== b ? v : null; }}",
                arg=before, timeout=WAIT_MS, polling=200).json_value()
            expect(page.locator('[data-testid="stImageCaption"]', has_text=re.compile("edited by hand", re.I))).to_be_visible()
            with page.expect_download() as download:
                page.get_by_role("button", name="Mask (PNG)").click()
            assert download.value.suggested_filename == "mask.png"
            page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)
            with page.expect_download() as download:  # made on request (a callable): audited all the same
                page.get_by_role("button", name="Masks (NIfTI)").click()
            assert download.value.suggested_filename == "mask.nii.gz"
            page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)

            page.reload()  # a new session: the uploader is empty, the file is dropped again
            assert open_scan(page, server.url) == edited
            expect(page.locator('[data-testid="stImageCaption"]', has_text=re.compile("edited by hand", re.I))).to_be_visible()
            page.screenshot(path=str(SHOTS / "case_after_reload.png"), full_page=True)

        with serve(use_tiny_models) as restarted:  # the server restarted on the same database file
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.set_default_timeout(WAIT_MS)
            assert open_scan(page, restarted.url) == edited
            expect(page.locator('[data-testid="stImageCaption"]', has_text=re.compile("edited by hand", re.I))).to_be_visible()
            page.goto(restarted.url + "/cases", timeout=WAIT_MS)
            expect(page.locator('[data-testid="stDataFrame"]')).to_be_visible()
            page.screenshot(path=str(SHOTS / "cases_after_restart.png"), full_page=True)
            assert page.locator('[data-testid="stException"]').count() == 0, page.evaluate(ERRORS_JS)
        browser.close()

    rows = Store(url).audit_rows()
    events = [r["event"] for r in rows]
    assert {"file-opened", "model-run", "mask-edited", "case-saved"} <= set(events), events
    assert [r["detail"] for r in rows if r["event"] == "export"] == ['{"edited":true,"format":"png"}',
                                                                     '{"edited":true,"format":"nifti"}']
    assert sum(r["event"] == "file-opened" and '"reopened":true' in r["detail"] for r in rows) == 2
    assert all((r["user_issuer"], r["user_subject"]) == (SINGLE_USER.issuer, SINGLE_USER.subject) for r in rows)
    dump = repr(rows)
    for identifier in IDENTIFIERS:
        assert identifier not in dump, identifier
