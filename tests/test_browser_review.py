"""A keyboard review in a real browser: `streamlit run app.py` on a tiny workspace, driven by
playwright through Debian's chromium (/usr/bin/chromium; nothing is downloaded).

The reviewer types their name in the sidebar, then on Label noise decides three items with keys
only (K keep; N + typed note + Enter, then A accept; 1 set the first value), undoes the last with U, and
downloads relabel.csv from Export, which must hold exactly what was decided. The server is
started and stopped by tests/browser_support.py; it is always killed, pass or fail.
"""
from __future__ import annotations

import pytest

from browser_support import (PAGE_TIMEOUT_MS, _browser_or_skip, launched_chromium, page_errors, start_server,
                             stop_server, wait_until_idle)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ITEM = ".st-key-label_noise_item_0"


def current_item(page) -> str:
    """The item the Label-noise card shows (its first `code` element)."""
    return page.locator(f"{ITEM} code").first.inner_text()


def press(page, key: str) -> None:
    """Press a key on the page, a moment after its last rerun. The run can be over before the new
    buttons' key handlers are attached, and a key pressed in that gap is lost (seen on a quiet box,
    1 run in 5: A right after the page went idle did nothing); a person never types that fast."""
    page.wait_for_timeout(300)
    page.keyboard.press(key)


def press_and_wait(page, key: str, *, until_item_differs_from: str | None = None, saved_text: str | None = None):
    """Press a key on the page (nothing focused) and wait for its rerun to show the result."""
    press(page, key)
    if until_item_differs_from is not None:
        page.wait_for_function(
            "([sel, old]) => { const c = document.querySelector(sel + ' code'); return c && c.innerText !== old; }",
            arg=[ITEM, until_item_differs_from], timeout=PAGE_TIMEOUT_MS)
    if saved_text is not None:
        page.get_by_text(saved_text, exact=False).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    wait_until_idle(page)


def answer_age_prompt(page) -> None:
    """An age-bin change asks for the age in years: Enter keeps the offered default."""
    if page.locator(".st-key-label_noise_age_prompt").count():
        press(page, "Enter")
        page.wait_for_selector(".st-key-label_noise_age_prompt", state="detached", timeout=PAGE_TIMEOUT_MS)
        wait_until_idle(page)


@pytest.fixture(scope="module")
def review_server(tmp_path_factory):
    _browser_or_skip()
    from audit.dataset_index import index_dataset
    from test_app_support import write_seed_dataset, write_synthetic_run

    base = tmp_path_factory.mktemp("review")
    write_seed_dataset(base / "data", people=8, eval_images=16)
    index = index_dataset(base / "data")
    ws = base / "workspace"
    write_synthetic_run(index, ws / "runs" / "review")
    proc, url = start_server(ws, base / "data", base / "streamlit.log")
    try:
        yield {"url": url, "workspace": ws, "index": index, "base": base}
    finally:
        stop_server(proc)


def test_keyboard_review_of_three_items_with_undo_lands_in_the_csv(review_server, tmp_path):
    from audit.export import read_export_csv
    from audit.reviews import ReviewStore

    url, index = review_server["url"], review_server["index"]
    with launched_chromium() as browser:
        context = browser.new_context(viewport={"width": 1500, "height": 1100}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        try:
            page.goto(url)
            page.wait_for_selector('h1:has-text("Overview")')
            wait_until_idle(page)
            name_box = page.locator(".st-key-sidebar_reviewer input")
            name_box.fill("reviewer-kb")
            name_box.press("Enter")
            wait_until_idle(page)
            page.get_by_role("link", name="Label noise").click()
            page.wait_for_selector(ITEM)
            wait_until_idle(page)
            assert "Keys: A accept" in page.locator("body").inner_text()
            page.mouse.click(700, 15)  # nothing focused: keys go to the page

            first = current_item(page)
            press_and_wait(page, "k", until_item_differs_from=first)              # 1: keep
            second = current_item(page)
            press(page, "n")                                                        # 2: note, then accept
            page.keyboard.type("checked by keyboard, 확인")
            page.keyboard.press("Enter")
            wait_until_idle(page)
            press(page, "a")
            answer_age_prompt(page)
            page.wait_for_function(
                "([sel, old]) => { const c = document.querySelector(sel + ' code'); return c && c.innerText !== old; }",
                arg=[ITEM, second], timeout=PAGE_TIMEOUT_MS)
            wait_until_idle(page)
            third = current_item(page)
            press(page, "1")                                                        # 3: set the first value
            answer_age_prompt(page)
            page.wait_for_function(
                "([sel, old]) => { const c = document.querySelector(sel + ' code'); return c && c.innerText !== old; }",
                arg=[ITEM, third], timeout=PAGE_TIMEOUT_MS)
            wait_until_idle(page)
            press_and_wait(page, "u", saved_text="Undone: set for")               # undo it
            page.screenshot(path=str(tmp_path / "label_noise_after_undo.png"), full_page=True)
            assert page_errors(page) == []

            store = ReviewStore(review_server["workspace"] / "reviews.sqlite")
            latest = store.latest(index.fingerprint).set_index("item")
            assert set(latest["reviewer"]) == {"reviewer-kb"}
            assert latest.loc[first, "decision"] == "keep"
            assert latest.loc[second, "decision"] in ("accept", "set")  # "set" when an age in years was given
            assert latest.loc[second, "note"] == "checked by keyboard, 확인"
            # undo appends the state before (none: a skip), the set stays in the history
            assert store.history(index.fingerprint, third)["decision"].tolist() == ["set", "skip"]

            page.get_by_role("link", name="Export").click()
            page.wait_for_selector(".st-key-export_download_relabel button")
            wait_until_idle(page)
            with page.expect_download() as download_info:
                page.locator(".st-key-export_download_relabel button").click()
            saved = tmp_path / "relabel.csv"
            download_info.value.save_as(saved)
        finally:
            context.close()
    frame = read_export_csv(saved).set_index("item")
    assert saved.read_bytes().startswith(b"\xef\xbb\xbf")
    assert frame.loc[first, "decision"] == "keep" and frame.loc[first, "changed"] == "False"
    assert frame.loc[second, "note"] == "checked by keyboard, 확인" and frame.loc[second, "changed"] == "True"
    assert frame.loc[third, "decision"] == "skip"
    assert set(frame["reviewer"]) == {"reviewer-kb"}
