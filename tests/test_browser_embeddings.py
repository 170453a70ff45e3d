"""The Embeddings map in a real browser (Debian chromium, playwright): "Colour by" recolours it in
the browser, a lasso selection still reaches the page (and the colouring survives that rerun).

Same tiny workspace as tests/test_browser_e2e.py, plus a stand-in UMAP layout file so no layout
job starts. The server is always killed, pass or fail.
"""
from __future__ import annotations

import numpy as np
import pytest

from browser_support import (PAGE_TIMEOUT_MS, _browser_or_skip, launched_chromium, page_errors, start_server,
                             stop_server, wait_until_idle)
from test_browser_e2e import build_workspace

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHART = ".st-key-embeddings_chart .js-plotly-plot"
LEGEND_TEXT = f"""() => {{
    const gd = document.querySelector('{CHART}');
    return gd ? [...gd.querySelectorAll('.legendtext, .cbtitle')].map(e => e.textContent).join('|') : '';
}}"""


def test_colour_by_switches_in_the_browser_and_a_lasso_still_selects(tmp_path):
    _browser_or_skip()
    from audit import embedding_layout

    built = build_workspace(tmp_path)
    xy = np.random.default_rng(0).normal(size=(len(built["index"].images), 2)).astype(np.float32)
    np.save(embedding_layout.layout_path(built["run"], "umap"), xy)
    proc, url = start_server(built["workspace"], built["data"], tmp_path / "streamlit.log")
    try:
        with launched_chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(f"{url}/embeddings")
            page.wait_for_selector(CHART, state="visible")
            wait_until_idle(page)
            assert page.evaluate(LEGEND_TEXT) == "correct|wrong"

            page.locator(f"{CHART} .updatemenu-header-group").first.click()
            page.locator(f"{CHART} .updatemenu-item-text", has_text="Split").first.click()
            page.wait_for_function(f"() => ({LEGEND_TEXT})() === 'eval|train'")
            page.locator(f"{CHART} .updatemenu-header-group").first.click()
            page.locator(f"{CHART} .updatemenu-item-text", has_text="Suspect score").first.click()
            page.wait_for_function(f"() => ({LEGEND_TEXT})() === 'suspect score'")  # the colour bar's title
            page.locator(f"{CHART} .updatemenu-header-group").first.click()
            page.locator(f"{CHART} .updatemenu-item-text", has_text="Split").first.click()
            page.wait_for_function(f"() => ({LEGEND_TEXT})() === 'eval|train'")

            # a lasso around the whole plot area selects every point
            box = page.locator(f"{CHART} .nsewdrag").first.bounding_box()
            corners = ((0.01, 0.01), (0.99, 0.01), (0.99, 0.99), (0.01, 0.99), (0.01, 0.02))
            page.mouse.move(box["x"] + box["width"] * 0.01, box["y"] + box["height"] * 0.01)
            page.mouse.down()
            for fx, fy in corners[1:]:
                page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy, steps=6)
            page.mouse.up()
            n = len(built["index"].images)
            page.get_by_text(f"{n:,} images selected").first.wait_for()
            wait_until_idle(page)
            assert page.evaluate(LEGEND_TEXT) == "eval|train"  # the rerun kept the browser's colouring
            assert page.locator(".st-key-embeddings_open_selection button").count() == 1
            page.screenshot(path=str(tmp_path / "embeddings.png"))
            assert not page_errors(page), page_errors(page)
    finally:
        stop_server(proc)
