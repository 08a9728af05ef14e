"""The real app in real Chromium: `streamlit run app.py` on the tiny models, driven by Playwright.

What AppTest cannot see: the page as the browser renders it, a file landing in the uploader's
<input type=file> (where a drag-and-drop lands), the drawable canvas taking a mouse stroke, the
websocket round trips. Each test leaves a full-page screenshot in test-artifacts/browser/.

Waits are on the exact state asserted, with nothing stale and the script not running: text
read during a rerun can be the previous run's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from bench.harness import (  # noqa: E402
    CHROMIUM, ERRORS_JS, HOME_READY_JS, READY_JS, RESULT_JS, UPLOAD_INPUT, VIEWPORT, launch_options, serve,
)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "test-artifacts" / "browser"
SAMPLES = ROOT / "samples"
WAIT_MS = 120_000  # Chromium and TensorFlow share 2 busy cores
BROKEN = b"\x89PNG\r\n\x1a\nxx"
CALLS = {"glioma", "meningioma", "no tumour", "pituitary"}  # the readable names the page shows

if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

expect.set_options(timeout=WAIT_MS)

# The page has settled: nothing stale, the script not running.
IDLE = """() => !document.querySelector('[data-stale="true"]')
               && !document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')"""
# A settled page's metric value by label, or null.
METRIC_JS = """
(label) => {
  if (document.querySelector('[data-stale="true"]')) return null;
  if (document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')) return null;
  const m = [...document.querySelectorAll('[data-testid="stMetric"]')].find(
      m => (m.querySelector('[data-testid="stMetricLabel"]')?.innerText || '').trim() === label);
  return m ? m.querySelector('[data-testid="stMetricValue"]').innerText.trim() : null;
}
"""


@pytest.fixture(scope="module")
def server(use_tiny_models):
    """`streamlit run app.py` on a free localhost port, MRI_MODELS_DIR = the tiny models."""
    with serve(use_tiny_models) as s:
        yield s


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        b = pw.chromium.launch(**launch_options())
        yield b
        b.close()


@pytest.fixture(scope="module")
def app(server, browser) -> str:
    """The server's url, after one visit to the home page, as a user arriving at the app would."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(server.url + "/", timeout=WAIT_MS)
    page.wait_for_function(HOME_READY_JS, timeout=WAIT_MS, polling=200)
    context.close()
    return server.url


@pytest.fixture
def page(browser, request):
    """A fresh browser context (its own Streamlit session); a full-page screenshot when done."""
    context = browser.new_context(viewport=VIEWPORT)
    p = context.new_page()
    p.set_default_timeout(WAIT_MS)
    yield p
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        p.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True, timeout=WAIT_MS)
    finally:
        context.close()


def no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.evaluate(ERRORS_JS)


def open_predict(page, url: str) -> str:
    """The predict page with its first run done; returns the subheader (the bundled sample's name)."""
    page.goto(url + "/predict", timeout=WAIT_MS)
    page.wait_for_function(READY_JS, timeout=WAIT_MS, polling=200)
    return page.locator("h3").first.inner_text().strip()


def test_home_shows_the_disclaimer(app, page):
    page.goto(app + "/", timeout=WAIT_MS)
    page.wait_for_function(HOME_READY_JS, timeout=WAIT_MS, polling=200)
    expect(page.locator('[data-testid="stAlertContentWarning"]')).to_contain_text(
        "supports and does not replace a radiologist's reading")
    expect(page.locator("h1").first).to_contain_text("MRI Insight")
    expect(page.locator('[data-testid="stSidebarNav"]')).to_contain_text("Upload & predict")
    no_exception(page)


def test_upload_gives_prediction_and_gradcam(app, page):
    shown = open_predict(page, app)
    scan = next(p for p in sorted((SAMPLES / "brain_tumor" / "glioma").glob("*.jpg")) if p.name != shown)
    page.locator(UPLOAD_INPUT).set_input_files(str(scan))  # where a drag-and-drop lands

    result = page.wait_for_function(RESULT_JS, arg=scan.name, timeout=WAIT_MS, polling=200).json_value()
    assert result["errors"] == []
    label = result["prediction"]
    assert label in CALLS
    expect(page.locator('[data-testid="stFileChipName"]')).to_have_text([scan.name])
    expect(page.locator("h3").first).to_have_text(scan.name)
    expect(page.locator('[data-testid="stImageCaption"]', has_text="Grad-CAM for")).to_contain_text(f"“{label}”")
    expect(page.locator('[data-testid="stImageCaption"]', has_text="Uploaded slice")).to_be_visible()
    expect(page.get_by_text("Calibrated confidence")).to_be_visible()
    # The two images are really there: decoded by the browser, not just their captions.
    sizes = page.evaluate("() => [...document.querySelectorAll('[data-testid=\"stImage\"] img')].map(i => i.naturalWidth)")
    assert len(sizes) >= 2 and all(w > 0 for w in sizes), sizes
    no_exception(page)


def test_lgg_task_shows_tumour_probability(app, page):
    open_predict(page, app)
    page.get_by_text("Lower-grade glioma mask", exact=True).click()
    value = page.wait_for_function(METRIC_JS, arg="Tumour probability", timeout=WAIT_MS, polling=200).json_value()
    assert value.endswith("%") and 0 <= float(value.lstrip("<> ").rstrip("%")) <= 100
    expect(page.locator('[data-testid="stImageCaption"]', has_text="The model's mask")).to_be_visible()
    assert page.evaluate(METRIC_JS, "Prediction") is None  # the classifier's metric is gone
    no_exception(page)


def test_mask_overlay_and_hand_correction(app, page):
    page.goto(app + "/mask", timeout=WAIT_MS)
    before = page.wait_for_function(METRIC_JS, arg="Area", timeout=WAIT_MS, polling=200).json_value()
    expect(page.locator('[data-testid="stImageCaption"]', has_text="The model's mask")).to_be_visible()

    page.get_by_text("Correct by hand", exact=True).click()
    canvas = page.locator('[class*="st-key-mask_canvas_"] canvas.upper-canvas')
    expect(canvas).to_be_visible()
    page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)
    box = canvas.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 100, box
    # A brush stroke across the upper third (the model's mask, if any, is unlikely to cover it all).
    y = box["y"] + box["height"] * 0.3
    page.mouse.move(box["x"] + box["width"] * 0.15, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.85, y + box["height"] * 0.1, steps=15)
    page.mouse.up()

    after = page.wait_for_function(
        f"(before) => {{ const v = ({METRIC_JS})('Area'); return v !== null && v !== before ? v : null; }}",
        arg=before, timeout=WAIT_MS, polling=200).json_value()
    assert float(after.split()[0]) > float(before.split()[0]), (before, after)
    expect(page.locator('[data-testid="stImageCaption"]', has_text="Mask edited by hand")).to_be_visible()
    no_exception(page)


def test_broken_file_is_named_and_page_stays_usable(app, page):
    open_predict(page, app)
    page.locator(UPLOAD_INPUT).set_input_files({"name": "broken.png", "mimeType": "image/png", "buffer": BROKEN})
    error = page.locator('[data-testid="stAlertContentError"]')
    expect(error).to_contain_text("broken.png")
    page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)
    assert page.evaluate(METRIC_JS, "Prediction") is None  # nothing readable: no prediction

    scan = SAMPLES / "brain_tumor" / "meningioma" / "Tr-me_0394.jpg"
    page.locator(UPLOAD_INPUT).set_input_files(str(scan))  # next to the broken one
    label = page.wait_for_function(
        f"""() => {{ const v = ({METRIC_JS})('Prediction');
                    const cam = [...document.querySelectorAll('[data-testid="stImageCaption"]')]
                        .some(c => c.innerText.startsWith('Grad-CAM for'));
                    return v !== null && cam ? v : null; }}""",
        timeout=WAIT_MS, polling=200).json_value()
    assert label in CALLS
    expect(page.locator('[data-testid="stFileChipName"]')).to_have_text(["broken.png", scan.name])
    expect(error).to_contain_text("broken.png")  # still said, next to the good file's result
    expect(page.locator("h3").first).to_have_text(scan.name)  # the one readable file, shown in full
    no_exception(page)


def test_deep_link_on_a_fresh_server_uses_the_apps_navigation(use_tiny_models, browser, request):
    # The pages live in views/, not pages/: a pages/ folder beside app.py puts a fresh server in
    # Streamlit's legacy multipage mode, so a bookmark opened first ran a page without app.py.
    with serve(use_tiny_models) as fresh:
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        try:
            page.goto(fresh.url + "/predict", timeout=WAIT_MS)  # the first visit is a bookmark
            page.wait_for_function(READY_JS, timeout=WAIT_MS, polling=200)
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)
            nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
            assert "Read a scan" in nav and "common" not in nav.split(), nav
            assert page.title() == "MRI Insight"
        finally:
            context.close()


def _stroke(page, canvas, x0: float, x1: float, y: float) -> None:
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * x0, box["y"] + box["height"] * y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * x1, box["y"] + box["height"] * (y + 0.05), steps=15)
    page.mouse.up()


def _area_after(page, before: str) -> str:
    return page.wait_for_function(
        f"(before) => {{ const v = ({METRIC_JS})('Area'); return v !== null && v !== before ? v : null; }}",
        arg=before, timeout=WAIT_MS, polling=200).json_value()


def _downloads_agree(page, area: str, tmp_path, tag: str) -> None:
    """The PNG, NIfTI and report the page offers now all hold the mask whose area is shown."""
    import io

    import numpy as np
    from PIL import Image

    from mri_core.io import read_image

    px = int(area.split()[0].replace(",", ""))
    got = {}
    for key in ("dl_png", "dl_nii", "dl_report"):
        with page.expect_download(timeout=WAIT_MS) as d:
            page.locator(f".st-key-{key} button").click()
        got[key] = Path(d.value.path()).read_bytes()
        (tmp_path / f"{tag}_{d.value.suggested_filename}").write_bytes(got[key])
    png = np.asarray(Image.open(io.BytesIO(got["dl_png"]))) == 255
    nii = read_image(got["dl_nii"], "mask.nii.gz").slices > 0.5
    report = got["dl_report"].decode()
    assert int(png.sum()) == px, (area, int(png.sum()))
    assert int(nii.sum()) == px and np.array_equal(nii[0], png)
    assert (f"Area: {px} px" in report) if px else ("none segmented" in report), report


def _stays(page, area: str, seconds: float = 3.0) -> None:
    """No flip-flop and no change after a download: the settled area stays the same."""
    page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)
    for _ in range(int(seconds / 0.5)):
        page.wait_for_timeout(500)
        now = page.evaluate(METRIC_JS, "Area")
        assert now in (None, area), (area, now)  # None: a rerun in progress
    assert page.wait_for_function(f"() => ({METRIC_JS})('Area')", timeout=WAIT_MS, polling=200).json_value() == area


def test_mask_brush_eraser_reset_and_downloads_agree_pixel_for_pixel(app, page, tmp_path):
    page.goto(app + "/mask", timeout=WAIT_MS)
    model_area = page.wait_for_function(METRIC_JS, arg="Area", timeout=WAIT_MS, polling=200).json_value()
    _downloads_agree(page, model_area, tmp_path, "model")
    page.get_by_text("Correct by hand", exact=True).click()
    canvas = page.locator('[class*="st-key-mask_canvas_"] canvas.upper-canvas')
    expect(canvas).to_be_visible()
    page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)
    _stays(page, model_area)  # turning editing on changes nothing

    _stroke(page, canvas, 0.15, 0.85, 0.3)  # brush
    brushed = _area_after(page, model_area)
    expect(page.locator('[data-testid="stImageCaption"]', has_text="Mask edited by hand")).to_be_visible()
    _stays(page, brushed)
    _downloads_agree(page, brushed, tmp_path, "brush")
    _stays(page, brushed)  # the downloads changed nothing

    page.locator(".st-key-mask_tool").get_by_text("eraser", exact=True).click()
    page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)
    canvas = page.locator('[class*="st-key-mask_canvas_"] canvas.upper-canvas')
    _stroke(page, canvas, 0.1, 0.5, 0.28)  # eraser over part of the stroke
    erased = _area_after(page, brushed)
    assert int(erased.split()[0]) < int(brushed.split()[0]), (brushed, erased)
    _stays(page, erased)
    _downloads_agree(page, erased, tmp_path, "eraser")

    page.locator(".st-key-mask_reset button").click()
    assert _area_after(page, erased) == model_area
    expect(page.locator('[data-testid="stImageCaption"]', has_text="The model's mask")).to_be_visible()
    _stays(page, model_area)
    _downloads_agree(page, model_area, tmp_path, "reset")
    _stays(page, model_area)
    no_exception(page)


def _mask_png(page):
    import io

    import numpy as np
    from PIL import Image

    with page.expect_download(timeout=WAIT_MS) as d:
        page.locator(".st-key-dl_png button").click()
    return np.asarray(Image.open(io.BytesIO(Path(d.value.path()).read_bytes()))) == 255


def test_a_canvas_drawn_again_keeps_the_earlier_strokes(app, page):
    """Stroke 1, correction off and on (the canvas is drawn again), stroke 2: both strokes are in
    the stored mask. Before issue 27's fix the new canvas started from the mask before stroke 1, and
    stroke 2 silently dropped it."""
    page.goto(app + "/mask", timeout=WAIT_MS)
    model_area = page.wait_for_function(METRIC_JS, arg="Area", timeout=WAIT_MS, polling=200).json_value()
    toggle = page.get_by_text("Correct by hand", exact=True)
    toggle.click()
    canvas = page.locator('[class*="st-key-mask_canvas_"] canvas.upper-canvas')
    expect(canvas).to_be_visible()
    page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)
    _stroke(page, canvas, 0.1, 0.9, 0.12)  # stroke 1, near the top
    first = _area_after(page, model_area)
    _stays(page, first)
    after_first = _mask_png(page)
    toggle.click()  # correction off: the canvas leaves the page
    expect(canvas).to_have_count(0)
    page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)
    toggle.click()  # and on again: a new canvas
    canvas = page.locator('[class*="st-key-mask_canvas_"] canvas.upper-canvas')
    expect(canvas).to_be_visible()
    page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)
    _stays(page, first)
    _stroke(page, canvas, 0.1, 0.9, 0.8)  # stroke 2, near the bottom
    second = _area_after(page, first)
    _stays(page, second)
    both = _mask_png(page)
    assert int(second.split()[0].replace(",", "")) > int(first.split()[0].replace(",", "")), (first, second)
    assert (both & after_first).sum() == after_first.sum(), "stroke 1 was lost when the canvas was drawn again"
    assert both[int(both.shape[0] * 0.8):].sum() > after_first[int(both.shape[0] * 0.8):].sum()  # stroke 2 is there
    no_exception(page)


def test_choices_and_files_survive_a_visit_to_another_page(app, page):
    """Streamlit forgets a widget whenever another page runs; the app keeps the task and the files."""
    open_predict(page, app)
    scans = [str(p) for p in sorted((SAMPLES / "brain_tumor").glob("*/*.jpg"))[:3]]
    page.locator(UPLOAD_INPUT).set_input_files(scans)
    table = page.locator('[data-testid="stDataFrame"]')
    expect(table).to_be_visible()
    page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)
    page.locator(".st-key-predict_task").get_by_text("Dementia stage", exact=True).click()
    page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)
    expect(table).to_be_visible()

    page.locator('[data-testid="stSidebarNav"]').get_by_text("Model comparison", exact=True).click()
    expect(page.locator("h1").first).to_have_text("Model comparison")
    page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Upload & predict", exact=True).click()
    expect(page.get_by_text("Reading the 3 files dropped here earlier")).to_be_visible()
    page.wait_for_function(IDLE, timeout=WAIT_MS, polling=200)
    expect(page.locator(".st-key-predict_task").get_by_role("radio", name="Dementia stage")).to_be_checked()
    expect(table).to_be_visible()
    page.get_by_text("Close these files", exact=True).click()
    expect(page.get_by_text("Reading the 3 files dropped here earlier")).to_have_count(0)
    expect(table).to_have_count(0)
    no_exception(page)
