"""The PACS path in real Chromium: `streamlit run app.py` pointed at a real Orthanc (MRI_PACS_URL),
search -> open a series -> its mask -> Send to PACS, then the SEG, SR and PDF are on the PACS.
Screenshots of each step go to test-artifacts/pacs/."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect  # noqa: E402

from bench.harness import VIEWPORT, serve  # noqa: E402
from mri_core import pacs  # noqa: E402
from test_browser import IDLE, METRIC_JS, WAIT_MS, browser, no_exception  # noqa: E402,F401
from test_pacs import load_lgg  # noqa: E402

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "pacs"
PATIENT = "SYN-BROWSER"


@pytest.fixture(scope="module")
def pacs_app(use_tiny_models, pacs_server):
    """The app served with its PACS set by the environment (as scripts/run_pacs_demo.sh does)."""
    load_lgg(pacs_server, PATIENT)
    old = os.environ.get("MRI_PACS_URL")
    os.environ["MRI_PACS_URL"] = pacs_server.url
    try:
        with serve(use_tiny_models) as server:
            yield server.url
    finally:
        if old is None:
            os.environ.pop("MRI_PACS_URL", None)
        else:
            os.environ["MRI_PACS_URL"] = old


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)  # no tooltip over the picture
    page.screenshot(path=str(SHOTS / name), full_page=True, timeout=WAIT_MS)


def test_search_open_mask_and_send_to_the_pacs(pacs_app, pacs_server, browser):  # noqa: F811
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(pacs_app + "/mask", timeout=WAIT_MS)
        page.wait_for_function(METRIC_JS, arg="Area", timeout=WAIT_MS, polling=200)  # the bundled sample first
        page.locator(".st-key-mask_source").get_by_text("From PACS", exact=True).click()
        page.locator(".st-key-mask_pacs_pid input").fill(PATIENT)
        page.get_by_role("button", name="Search the PACS").click()
        series_box = page.locator(".st-key-mask_pacs_series")
        expect(series_box).to_be_visible()
        series_box.get_by_role("combobox").click()  # Streamlit 1.67's selectbox: a react-aria combobox
        page.get_by_role("option", name="AX FLAIR (MR, 4 images)").click()
        page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)
        expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
        shot(page, "1_search_and_series.png")

        page.locator(".st-key-mask_pacs_open button").click()
        expect(page.get_by_text("Opened from the PACS", exact=False)).to_be_visible()
        area = page.wait_for_function(METRIC_JS, arg="Area", timeout=WAIT_MS, polling=200).json_value()
        assert area.endswith("mm²"), area  # the spacing came with the series
        expect(page.get_by_text(re.compile(r"^Slice \d of 4$")).first).to_be_visible()  # the four slices are one volume
        shot(page, "2_series_opened_with_its_mask.png")

        page.get_by_role("button", name="Send to PACS", exact=True).click()
        expect(page.locator('[data-testid="stAlertContentSuccess"]')).to_contain_text("Stored on the PACS")
        page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)
        shot(page, "3_sent_to_the_pacs.png")
        no_exception(page)
    finally:
        context.close()
    config = pacs.PacsConfig(pacs_server.url)
    (study,) = pacs.search_studies(config, patient_id=PATIENT)
    stored = [s for s in pacs.list_series(config, study.uid) if s.modality in ("SEG", "SR", "DOC")]
    assert sorted(s.modality for s in stored) == ["DOC", "SEG", "SR"]
    assert all(s.description.startswith("MRI Insight lgg_") for s in stored)
