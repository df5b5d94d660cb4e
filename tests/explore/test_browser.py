"""``minicnn explore`` in a real headless browser: Debian's chromium driven by Selenium through
chromium-driver (``.ci/run`` installs both). Draw on the canvas and watch the prediction and the
maps change; click a conv unit and read the library's numbers; open the backward view; no console
errors and no request to anything but 127.0.0.1; the exported static page from file://.
Screenshots are checked for content and kept in docs/images/ for the README."""

from __future__ import annotations

import io
import os
import pathlib

import numpy as np
import pytest

from minicnn.explore import export_page, unpack

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("MINICNN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MINICNN_CHROMEDRIVER", "/usr/bin/chromedriver")
#: MINICNN_UPDATE_SCREENSHOTS=1 writes the screenshots to docs/images/ (the README shows them)
DOCS_IMAGES = pathlib.Path(__file__).resolve().parents[2] / "docs" / "images"


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    if os.environ.get("MINICNN_UPDATE_SCREENSHOTS") == "1":
        return DOCS_IMAGES
    return tmp_path_factory.mktemp("screenshots")


def _missing():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        return f"needs chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}; apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium (the dev extra)"
    return None


if _missing():
    pytest.skip(_missing(), allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def driver():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1500,1250", "--disable-extensions", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def wait(driver, cond, timeout=60):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: cond(d))


def console_errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def foreign_requests(driver, allowed_prefixes):
    urls = driver.execute_script(
        "return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name))")
    return [u for u in urls if not any(u.startswith(p) for p in allowed_prefixes)]


def check_screenshot(driver, path):
    from PIL import Image
    png = driver.get_screenshot_as_png()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)
    assert a.std() > 20, f"{path.name} looks blank (pixel std {a.std():.1f})"
    assert len(np.unique(a.reshape(-1, 3)[::7], axis=0)) > 100, f"{path.name} has almost no colours"


def map_pixels(driver, layer, channel=0):
    return driver.execute_script(
        "const c = document.querySelector(`.maps canvas[data-layer='${arguments[0]}'][data-ch='${arguments[1]}']`);"
        "return c ? Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data) : null;",
        layer, channel)


def draw(driver, points):
    canvas = driver.find_element(By.ID, "draw")
    w, h = canvas.size["width"], canvas.size["height"]
    chain = ActionChains(driver, duration=10)
    x0, y0 = points[0]
    chain.move_to_element_with_offset(canvas, int((x0 - 0.5) * w), int((y0 - 0.5) * h)).click_and_hold()
    for (xa, ya), (xb, yb) in zip(points, points[1:]):
        chain.move_by_offset(int((xb - xa) * w), int((yb - ya) * h))
    chain.release().perform()


def test_draw_click_backward(driver, live_server, explorer, model, shots):
    url = live_server.url
    driver.get(url)
    wait(driver, lambda d: d.execute_script("return window.explore.state.fwd !== null"))
    wait(driver, lambda d: map_pixels(d, 0) is not None)
    n0 = driver.execute_script("return window.explore.state.roundTrips.length")
    before_maps = map_pixels(driver, 0, 0)

    # -- draw a "1" and see the maps and the prediction update
    draw(driver, [(0.72, 0.17), (0.62, 0.4), (0.52, 0.62), (0.44, 0.85)])
    wait(driver, lambda d: d.execute_script("const s = window.explore.state; return s.index === null && "
                                            "!s.inflight && s.roundTrips.length > arguments[0]", n0))
    probs_1 = driver.execute_script("return window.explore.state.fwd.probabilities")
    maps_1 = map_pixels(driver, 0, 0)
    assert maps_1 != before_maps
    assert len(driver.find_elements(By.CSS_SELECTOR, "#steps figure")) == 5
    # the input the page shows is the drawing, prepared as `minicnn predict` does
    x1 = unpack(driver.execute_script("return window.explore.state.input"))
    assert x1.shape == (28, 28, 1) and x1.max() > 0.5 and x1[:, :4].max() < 0.1
    # -- a second stroke (a bar: now a "7"-ish shape) changes them again
    n1 = driver.execute_script("return window.explore.state.roundTrips.length")
    draw(driver, [(0.25, 0.17), (0.5, 0.17), (0.74, 0.17)])
    wait(driver, lambda d: d.execute_script("const s = window.explore.state; return !s.inflight && !s.dirty && "
                                            "s.roundTrips.length > arguments[0]", n1))
    wait(driver, lambda d: d.execute_script("return window.explore.state.fwd.probabilities") != probs_1)
    assert map_pixels(driver, 0, 0) != maps_1
    x2 = unpack(driver.execute_script("return window.explore.state.input"))
    _, outs = model.forward(x2[None], training=False, record=True)
    shown = driver.execute_script("return window.explore.state.fwd.probabilities")
    np.testing.assert_allclose(shown, outs[-1][0], rtol=1e-6)
    pred = driver.find_element(By.ID, "prediction").get_attribute("data-class")
    assert int(pred) == int(np.argmax(outs[-1][0]))

    # -- click a conv unit: the strongest one of the first conv, at its cell on its map
    r, c, f = (int(v) for v in np.unravel_index(int(np.argmax(outs[0][0])), outs[0][0].shape))
    cv = driver.find_elements(By.CSS_SELECTOR, ".maps canvas[data-layer='0']")[f]
    oh, ow = outs[0][0].shape[:2]
    size = cv.size
    ActionChains(driver).move_to_element_with_offset(
        cv, int((c + 0.5) / ow * size["width"] - size["width"] / 2),
        int((r + 0.5) / oh * size["height"] - size["height"] / 2)).click().perform()
    wait(driver, lambda d: d.find_elements(By.ID, "conv-sum"))
    assert driver.execute_script("return window.explore.state.selected.unit") == [r, c, f]
    lay = model.layers[0]
    expected_sum = float((x2[r:r + 3, c:c + 3, :].astype(np.float64)
                          * lay.params["kernel"][:, :, :, f].astype(np.float64)).sum())
    box = driver.find_element(By.ID, "conv-sum")
    assert float(box.get_attribute("data-sum")) == pytest.approx(expected_sum, rel=1e-12, abs=1e-12)
    assert float(box.get_attribute("data-bias")) == float(lay.params["bias"][f])
    assert float(driver.find_element(By.ID, "detail").get_attribute("data-value")) == float(outs[0][0, r, c, f])
    assert "products" in driver.find_element(By.ID, "detail").text
    check_screenshot(driver, shots / "explore.png")

    # -- the backward view, with the clicked filter's weight gradient
    driver.find_element(By.ID, "view-backward").click()
    wait(driver, lambda d: d.find_element(By.ID, "loss").text.startswith("loss"))
    wait(driver, lambda d: d.find_elements(By.ID, "wg-sum"))
    assert len(driver.find_elements(By.CSS_SELECTOR, "#attribution figure")) == 2
    assert "Saliency" in driver.find_element(By.ID, "attribution").text
    assert "Grad-CAM" in driver.find_element(By.ID, "attribution").text
    bwd = driver.execute_script("return window.explore.state.bwd")
    assert bwd["target"] == 0
    # a max-pool unit in the backward view: its gradient and the winner it is routed to
    pool = driver.find_elements(By.CSS_SELECTOR, ".maps canvas[data-layer='2']")[0]
    ActionChains(driver).move_to_element(pool).click().perform()
    wait(driver, lambda d: "routed to the winner" in (d.find_element(By.ID, "detail").text))
    assert "dL/d(output) here" in driver.find_element(By.ID, "backward-at").text
    # back to the conv unit for the weight gradient
    ActionChains(driver).move_to_element_with_offset(
        cv, int((c + 0.5) / ow * size["width"] - size["width"] / 2),
        int((r + 0.5) / oh * size["height"] - size["height"] / 2)).click().perform()
    wait(driver, lambda d: "ReLU open" in d.find_element(By.ID, "detail").text)
    wait(driver, lambda d: d.find_elements(By.ID, "wg-sum"))
    check_screenshot(driver, shots / "explore-backward.png")

    # -- one traced Adam step
    driver.find_element(By.ID, "opt-step").click()
    wait(driver, lambda d: "Adam" in d.find_element(By.ID, "step-trace").text)

    # -- step through: one layer at a time, "what will this unit be?", reveal; then backward
    driver.find_element(By.ID, "view-forward").click()
    driver.find_element(By.ID, "step-mode").click()
    wait(driver, lambda d: "what will unit" in d.find_element(By.ID, "step-question").text)
    hidden = lambda d: [int(b.get_attribute("data-layer")) for b in d.find_elements(By.CSS_SELECTOR, ".layer.step-hidden")]
    assert hidden(driver) == list(range(1, len(model.layers)))
    assert "quiz" in driver.find_element(By.ID, "detail").get_attribute("class")
    assert not driver.find_element(By.ID, "unit-value").is_displayed() or \
        driver.find_element(By.ID, "unit-value").value_of_css_property("visibility") == "hidden"
    driver.find_element(By.ID, "step-reveal").click()
    assert "→" in driver.find_element(By.ID, "step-question").text
    answer = float(driver.find_element(By.ID, "step-question").get_attribute("data-answer"))
    x3 = unpack(driver.execute_script("return window.explore.state.input"))
    _, outs3 = model.forward(x3[None], training=False, record=True)
    assert answer == float(outs3[0][0].max())
    for k in range(1, len(model.layers)):
        driver.find_element(By.ID, "step-next").click()
        wait(driver, lambda d: f"layer {k} " in d.find_element(By.ID, "step-question").text)
        assert hidden(driver) == list(range(k + 1, len(model.layers)))
    driver.find_element(By.ID, "step-next").click()
    wait(driver, lambda d: d.find_element(By.ID, "step-question").text.startswith("Backward"))
    assert hidden(driver) == list(range(len(model.layers) - 1))
    driver.find_element(By.ID, "step-mode").click()
    wait(driver, lambda d: hidden(d) == [])

    # -- a test image by index, then the next misclassified one
    idx = driver.find_element(By.ID, "test-index")
    idx.clear()
    idx.send_keys("3")
    driver.find_element(By.ID, "load-index").click()
    wait(driver, lambda d: d.execute_script("return window.explore.state.index === 3 && "
                                            "window.explore.state.fwd.index === 3"))
    driver.find_element(By.ID, "next-wrong").click()
    pred = model.predict(explorer.test_x).argmax(1)
    wrong = [int(i) for i in np.flatnonzero(pred != explorer.test_y) if i > 3]
    if wrong:
        wait(driver, lambda d: d.execute_script("return window.explore.state.index") == wrong[0])

    assert console_errors(driver) == []
    assert foreign_requests(driver, (url, "data:", "blob:")) == []


def test_exported_page_opens_from_file(driver, explorer, tmp_path, shots):
    x, label = explorer.test_image(7)
    path = export_page(explorer, x, tmp_path / "page", label=label, source="test image 7")
    driver.get(pathlib.Path(path).as_uri())
    wait(driver, lambda d: map_pixels(d, 0) is not None)
    px = np.array(map_pixels(driver, 1, 0)).reshape(-1, 4)[:, 0]
    assert px.std() > 0, "the exported maps are blank"
    assert driver.find_element(By.ID, "prediction").text
    # a unit's receptive field, computed by the page from the layers' geometry
    for layer, unit in ((0, [5, 7, 3]), (1, [10, 2, 0]), (2, [4, 4, 1]), (5, [3])):
        rf = driver.execute_script("return receptiveField(arguments[0], arguments[1])", layer, unit)
        assert rf == explorer.receptive_field(layer, tuple(unit))
    cv = driver.find_elements(By.CSS_SELECTOR, ".maps canvas[data-layer='1']")[0]
    ActionChains(driver).move_to_element(cv).click().perform()
    wait(driver, lambda d: "receptive field: input rows" in d.find_element(By.ID, "detail").text)
    driver.find_element(By.ID, "view-backward").click()
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#attribution figure")) == 2)
    check_screenshot(driver, shots / "explore-export.png")
    assert console_errors(driver) == []
    assert foreign_requests(driver, ("file://", "data:", "blob:")) == []


@pytest.mark.tf
def test_beside_tensorflow(driver, model, explorer):
    pytest.importorskip("tensorflow")
    from minicnn.explore import Explorer
    from reference.explore_tf import make_twin
    from tests.explore.conftest import LiveServer
    server = LiveServer(Explorer(model, explorer.test_x, explorer.test_y, name="pooled-tf", twin_factory=make_twin))
    try:
        driver.get(server.url)
        wait(driver, lambda d: d.execute_script("return window.explore.state.fwd !== null && !window.explore.state.inflight"))
        toggle = driver.find_element(By.ID, "tf-toggle")
        assert toggle.is_displayed()
        driver.find_element(By.ID, "tf-compare").click()
        wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".tfnote")) == len(model.layers), timeout=120)
        diffs = [float(n.get_attribute("data-output-diff")) for n in driver.find_elements(By.CSS_SELECTOR, ".tfnote")]
        assert max(diffs) < 1e-5
        cv = driver.find_elements(By.CSS_SELECTOR, ".maps canvas[data-layer='1']")[0]
        ActionChains(driver).move_to_element(cv).perform()
        wait(driver, lambda d: "TensorFlow" in (cv.get_attribute("title") or ""))
        assert "minicnn" in cv.get_attribute("title")
        assert console_errors(driver) == []
        assert foreign_requests(driver, (server.url, "data:", "blob:")) == []
    finally:
        server.stop()
