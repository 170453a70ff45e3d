"""End to end in a real browser: `streamlit run app.py` on a tiny workspace, driven by playwright
through Debian's chromium (/usr/bin/chromium; nothing is downloaded).

The workspace holds a tiny demo dataset (audit.demo_data) and a run whose probabilities are drawn
around the given labels with seeded confusions (so every page has wrong cells and suspects to show)
plus the review queue computed by audit.noise.merge. No model is trained: this test is about the
app, the model pieces have their own tests. The server is always killed, pass or fail.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from browser_support import (PAGE_TIMEOUT_MS, _browser_or_skip, launched_chromium, page_errors, start_server,
                             stop_server, wait_for, wait_until_idle)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGES = {  # url path -> (title, a selector that shows the page's main content)
    "overview": ("Overview", ".st-key-overview_chart_split .js-plotly-plot"),
    "confusion": ("Confusion", ".st-key-confusion_matrix_chart .js-plotly-plot"),
    "samples": ("Samples", ".st-key-samples_open_0"),
    "embeddings": ("Embeddings", ".st-key-embeddings_chart .js-plotly-plot"),
    "label_noise": ("Label noise", ".st-key-label_noise_item_0"),
    "export": ("Export", "h1"),
}


# -- the workspace --------------------------------------------------------------------------------

def synthetic_head_probs(rng, given: np.ndarray, k: int, wrong_rate: float) -> np.ndarray:
    """(N, k) probabilities of a made-up head: confident, and wrong on about `wrong_rate` of rows."""
    n = len(given)
    target = given.copy()
    flip = rng.random(n) < wrong_rate
    target[flip] = (given[flip] + rng.integers(1, k, flip.sum())) % k
    logits = rng.normal(0, 0.7, (n, k))
    logits[np.arange(n), target] += 3.0
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def synthetic_run(index, run_dir: Path, *, seed: int = 0, embedding_dim: int = 16) -> Path:
    """A run over `index` without a model: per-head probabilities peaked on the given label, with
    a seeded share of confident mistakes; embeddings are class centroids plus noise (N, D)."""
    from audit.labels import N_AGE_BINS, N_GENDER, N_MASK
    from audit.runs import INDEX_COLUMNS, finish_predictions, write_run

    rng = np.random.default_rng(seed)
    images = index.images
    n = len(images)

    def head(given: np.ndarray, k: int, wrong_rate: float) -> np.ndarray:
        return synthetic_head_probs(rng, given, k, wrong_rate)

    rows = images.loc[:, list(INDEX_COLUMNS)].copy()
    rows["fold"] = np.where(rows["split"] == "train", rng.integers(0, 3, n), -1)
    preds = finish_predictions(rows, head(images["mask"].to_numpy(), N_MASK, 0.05),
                               head(images["gender"].to_numpy(), N_GENDER, 0.12),
                               head(images["age_bin"].to_numpy(), N_AGE_BINS, 0.25),
                               pred_age=images["age"].to_numpy() + rng.normal(0, 5, n))
    centres = rng.normal(0, 3, (18, embedding_dim))
    emb = centres[images["class_id"].to_numpy()] + rng.normal(0, 1, (n, embedding_dim))
    meta = {"checkpoint": None, "data_root": str(index.root), "data_fingerprint": index.fingerprint,
            "bins": index.bins.to_dict(), "source": "predict", "note": "synthetic run for the browser test"}
    return write_run(run_dir, preds, emb, meta)


def build_workspace(base: Path, *, people: int = 8, eval_images: int = 16) -> dict:
    """Tiny dataset + run + review queue under `base`; returns paths and the index."""
    from audit.dataset_index import index_dataset
    from audit.demo_data import make_demo
    from audit.noise.merge import find_suspects
    from audit.runs import Run

    data = base / "data"
    ws = base / "workspace"
    make_demo(data, people=people, eval_images=eval_images, seed=3, workers=1)
    index = index_dataset(data)
    run_dir = synthetic_run(index, ws / "runs" / "e2e")
    queue = find_suspects(Run.open(run_dir))
    queue.to_parquet(run_dir / "suspects.parquet", index=False)
    return {"data": data, "workspace": ws, "run": run_dir, "index": index, "queue": queue}


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    _browser_or_skip()
    base = tmp_path_factory.mktemp("e2e")
    built = build_workspace(base)
    proc, url = start_server(built["workspace"], built["data"], base / "streamlit.log")
    try:
        yield {**built, "url": url, "log": base / "streamlit.log"}
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def browser(app_server):
    with launched_chromium() as b:
        yield b


@pytest.fixture
def page(browser, app_server, tmp_path):
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(PAGE_TIMEOUT_MS)
    # Enter through the root, as a user does (deep links: test_deep_link_on_a_fresh_server_runs_the_router).
    pg.goto(app_server["url"])
    pg.wait_for_selector('h1:has-text("Overview")')
    wait_until_idle(pg)
    try:
        yield pg
    finally:
        try:
            pg.screenshot(path=str(tmp_path / "last.png"), full_page=True)
        except Exception:
            pass
        context.close()


def open_page(page, url: str, path: str) -> None:
    title, selector = PAGES[path]
    page.goto(f"{url}/{path}")
    page.wait_for_selector(f'h1:has-text("{title}")')
    page.wait_for_selector(selector)
    wait_until_idle(page)


# -- tests ----------------------------------------------------------------------------------------

def test_every_page_shows_its_content(page, app_server):
    for path, (title, selector) in PAGES.items():
        open_page(page, app_server["url"], path)
        assert page.locator(selector).first.is_visible(), f"{path}: {selector} not visible"
        assert page_errors(page) == [], f"{path} shows errors: {page_errors(page)}"


def test_clicking_a_confusion_cell_opens_its_samples(page, app_server):
    from audit.labels import class_names

    index = app_server["index"]
    preds = pd.read_parquet(app_server["run"] / "predictions.parquet")
    cells = preds[preds["class_id"] != preds["pred_class"]].groupby(["class_id", "pred_class"]).size()
    (given, pred), count = cells.idxmax(), int(cells.max())
    names = class_names(index.bins)

    open_page(page, app_server["url"], "confusion")
    chart = page.locator(".st-key-confusion_matrix_chart .js-plotly-plot").first
    # The cell's centre in page pixels, from plotly's own axis transforms.
    xy = chart.evaluate("""(gd, ij) => {
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const box = gd.getBoundingClientRect();
        return [box.left + xa._offset + xa.l2p(ij[1]), box.top + ya._offset + ya.l2p(ij[0])];
    }""", [int(given), int(pred)])
    page.mouse.move(xy[0], xy[1])
    page.mouse.click(xy[0], xy[1])
    page.wait_for_url("**/samples", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector(".st-key-samples_open_0")
    wait_until_idle(page)
    info = page.locator('[data-testid="stAlertContentInfo"]').first.inner_text()
    assert f"given {names[given]} × predicted {names[pred]}" in info
    assert page.get_by_text(f"{count:,} images match").count() == 1
    # The grid's cards can still be arriving when the status widget clears (CI once saw 3 of 5).
    cards = page.locator('[class*="st-key-samples_open_"]')
    assert wait_for(lambda: cards.count() == min(count, 48), 30), f"{cards.count()} cards for {count} images"
    assert page_errors(page) == []


def test_decision_on_label_noise_page_lands_in_the_csv(page, app_server):
    from audit.export import read_export_csv
    from audit.reviews import ReviewStore

    open_page(page, app_server["url"], "label_noise")
    card = page.locator(".st-key-label_noise_item_0")
    header = card.locator("code").first.inner_text()  # the item, e.g. a person key or image path
    note = 'looks right, "really" — 확인함'
    note_box = page.locator(".st-key-label_noise_note_0 input")
    note_box.fill(note)
    note_box.press("Enter")
    wait_until_idle(page)
    page.locator(".st-key-label_noise_accept_0 button").click()
    # The page acknowledges a stored decision with a toast; wait for it rather than for "idle",
    # which a loaded machine can report before the click's rerun has even started.
    page.get_by_text("Saved: accept for", exact=False).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    wait_until_idle(page)

    # Saved at once: everything acknowledged on screen is in the store.
    index = app_server["index"]
    latest = ReviewStore(app_server["workspace"] / "reviews.sqlite").latest(index.fingerprint)
    row = latest[latest["item"] == header]
    assert len(row) == 1, f"no decision stored for {header!r}: {latest[['item', 'decision']]}"
    row = row.iloc[0]
    assert row["decision"] == "accept" and row["note"] == note
    queue = app_server["queue"]
    q = queue[(queue["item"] == header) & (queue["field"] == row["field"])].iloc[0]
    assert row["new_value"] == q["suggested"]

    open_page(page, app_server["url"], "export")
    button = page.locator(".st-key-export_download_relabel button")
    with page.expect_download() as download_info:
        button.click()
    download = download_info.value
    saved = Path(app_server["workspace"]) / "downloaded_relabel.csv"
    download.save_as(saved)
    assert saved.read_bytes().startswith(b"\xef\xbb\xbf")
    frame = read_export_csv(saved)
    mine = frame[(frame["item"] == header) & (frame["field"] == row["field"])]
    assert len(mine) == 1
    mine = mine.iloc[0]
    assert mine["decision"] == "accept" and mine["note"] == note
    assert mine["new"] == str(int(q["suggested"])) and mine["given"] == str(int(q["given"]))
    assert mine["changed"] == "True"


def test_deep_link_on_a_fresh_server_runs_the_router(browser, app_server):
    """Streamlit treats a pages/ folder beside app.py as old-style pages until app.py has run once
    in the process: /<page> opened first (a bookmark, a tab reconnecting after a restart) must
    still get the router, its sidebar and the run."""
    proc, url = start_server(app_server["workspace"], app_server["data"], app_server["log"].with_name("fresh.log"))
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    try:
        pg = context.new_page()
        pg.set_default_timeout(PAGE_TIMEOUT_MS)
        pg.goto(f"{url}/confusion")
        pg.wait_for_selector('h1:has-text("Confusion")', timeout=PAGE_TIMEOUT_MS)
        wait_until_idle(pg)
        # The router draws the dataset box in the sidebar and the run's matrix on the page.
        assert pg.locator(".st-key-sidebar_data_dir").count() == 1
        pg.wait_for_selector(".st-key-confusion_matrix_chart .js-plotly-plot")
    finally:
        context.close()
        stop_server(proc)
