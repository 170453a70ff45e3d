"""Page speed of the app in a real browser (Debian chromium driven by playwright).

    python benchmarks/bench_pages.py --data DATA --workspace WS [--repeats 5] [--json OUT]

WS must hold the run to measure under `WS/runs/<name>/` (with its suspects.parquet and, to keep
UMAP from starting in the background while we measure, its UMAP layout); the app picks the newest
run made on DATA. The script starts `streamlit run app.py` on a free port, opens the app once to
fill the caches (that first visit of each page is reported as "first visit"), then measures, each
`--repeats` times:

- navigation: click a page in the sidebar -> the page's main content is visible (`content`), and
  -> the script run is over (`done`);
- Samples: a filter change (Prediction: All <-> Wrong) -> the grid's caption has changed and its
  first thumbnail has loaded;
- Embeddings: a colour change (the map's "Colour by" dropdown: one option <-> another, recoloured
  in the browser without a rerun) -> the plot's legend has changed.

--pages limits the navigation to some pages (e.g. `--pages embeddings overview` at 10x).

Timings are wall seconds measured in this process around the browser actions (they include the
websocket round trips, the script rerun and the browser's drawing). With --record N, N decisions are
recorded first (so Export has something to show).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

# The server and browser plumbing is the browser tests'; one implementation of both.
from browser_support import CHROMIUM, CHROMIUM_ARGS, start_server, stop_server, wait_until_idle  # noqa: E402
from test_browser_e2e import PAGES  # noqa: E402

TIMEOUT_MS = 120_000
NAV_ORDER = ["overview", "confusion", "samples", "embeddings", "label_noise", "export"]
FIRST_IMAGE_LOADED = """() => {
    const im = document.querySelector('[data-testid="stImage"] img, [data-testid="stFullScreenFrame"] img');
    return !!im && im.complete && im.naturalWidth > 0;
}"""


# Export: its download buttons come last, after the decisions table (see --record).
CONTENT = {**{p: sel for p, (_title, sel) in PAGES.items()}, "export": ".st-key-export_download_relabel button"}


def click_nav(page, path: str) -> None:
    title = PAGES[path][0]
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()


def navigate(page, path: str) -> tuple[float, float]:
    """Sidebar click -> (seconds to main content visible, seconds to the run being over)."""
    t0 = time.perf_counter()
    click_nav(page, path)
    page.wait_for_selector(CONTENT[path], state="visible", timeout=TIMEOUT_MS)
    if path == "samples":
        page.wait_for_function(FIRST_IMAGE_LOADED, timeout=TIMEOUT_MS)
    t_content = time.perf_counter() - t0
    wait_until_idle(page, TIMEOUT_MS)
    return t_content, time.perf_counter() - t0


def _caption_text(page) -> str:
    loc = page.get_by_text("images match").first
    return loc.inner_text() if loc.count() else ""


def samples_filter_change(page, choice: str) -> float:
    """Click the Prediction radio's `choice` -> the caption changed and the first thumbnail loaded."""
    before = _caption_text(page)
    t0 = time.perf_counter()
    page.locator(".st-key-samples_correct label", has_text=choice).first.click()
    page.wait_for_function(
        """(before) => {
            const el = [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
                .find(e => e.innerText.includes('images match'));
            return !!el && el.innerText !== before;
        }""", arg=before, timeout=TIMEOUT_MS)
    page.wait_for_function(FIRST_IMAGE_LOADED, timeout=TIMEOUT_MS)
    return time.perf_counter() - t0


# The Embeddings plot's legend entries (or colour-bar title), joined; "" before the plot exists.
LEGEND_TEXT = """() => {
    const gd = document.querySelector('.st-key-embeddings_chart .js-plotly-plot');
    if (!gd) return '';
    return [...gd.querySelectorAll('.legendtext, .cbtitle')].map(e => e.textContent).join('|');
}"""


def embeddings_colour_change(page, option: str) -> float:
    """Choose `option` in the map's own "Colour by" dropdown (plotly updatemenus, recoloured in the
    browser) -> the plot's legend (or colour bar) shows the new colouring. Timed from the click on
    the option (the menu is opened first, untimed, as with a select box)."""
    before = page.evaluate(LEGEND_TEXT)
    page.locator(".st-key-embeddings_chart .updatemenu-header-group").first.click()
    option_el = page.locator(".st-key-embeddings_chart .updatemenu-item-text", has_text=option).first
    option_el.wait_for(state="visible", timeout=TIMEOUT_MS)
    t0 = time.perf_counter()
    option_el.click()
    page.wait_for_function(f"""(before) => {{ const now = ({LEGEND_TEXT})(); return now !== '' && now !== before; }}""",
                           arg=before, timeout=TIMEOUT_MS)
    return time.perf_counter() - t0


def alternate(page, path: str, change, choices: tuple[str, str], repeats: int) -> dict:
    """On page `path`, time `change(page, choice)` `repeats` times, alternating between two choices."""
    navigate(page, path)
    wait_until_idle(page, TIMEOUT_MS)
    times = []
    for i in range(repeats):
        times.append(change(page, choices[i % 2]))
        wait_until_idle(page, TIMEOUT_MS)
    return summarise(times)


def record_decisions(workspace: Path, data: Path, n: int) -> int:
    """Accept the first n suspects of the newest run on `data` (so Export has rows)."""
    import pandas as pd

    from audit.dataset_index import index_dataset
    from audit.reviews import ReviewStore
    from audit.runs import list_runs

    index = index_dataset(data)
    runs = [(name, meta) for name, meta in list_runs(workspace / "runs")
            if meta.get("data_fingerprint") == index.fingerprint]
    if not runs:
        return 0
    queue = pd.read_parquet(workspace / "runs" / runs[-1][0] / "suspects.parquet").head(n)
    store = ReviewStore(workspace / "reviews.sqlite")
    for q in queue.itertuples(index=False):
        store.record(index.fingerprint, q.item, q.field, "accept", given=int(q.given), suggested=int(q.suggested),
                     split=q.split, person=q.person, path=q.path, detectors=q.detectors, score=float(q.score),
                     bins=index.bins, note="benchmark")
    return len(queue)


def summarise(samples: list[float]) -> dict:
    return {"n": len(samples), "median_s": round(statistics.median(samples), 3), "best_s": round(min(samples), 3),
            "worst_s": round(max(samples), 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="dataset folder")
    parser.add_argument("--workspace", required=True, type=Path, help="workspace holding runs/<run>/")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--record", type=int, default=20, help="record N decisions before measuring (default 20)")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--screenshots", type=Path, default=None, help="save one screenshot per page here")
    parser.add_argument("--pages", nargs="+", default=None, choices=NAV_ORDER,
                        help="navigate between these pages only (default: all); overview is always the start")
    args = parser.parse_args(argv)
    order = ["overview"] + [p for p in NAV_ORDER[1:] if args.pages is None or p in args.pages]

    from playwright.sync_api import sync_playwright

    if args.record:
        print(f"recorded {record_decisions(args.workspace, args.data, args.record)} decisions", flush=True)
    log = args.workspace / "bench_pages_streamlit.log"
    t_start = time.perf_counter()
    proc, url = start_server(args.workspace, args.data, log)
    results: dict = {"server_start_s": round(time.perf_counter() - t_start, 2)}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            t0 = time.perf_counter()
            page.goto(url)
            page.wait_for_selector(CONTENT["overview"], state="visible")
            wait_until_idle(page, TIMEOUT_MS)
            results["first_load_overview_s"] = round(time.perf_counter() - t0, 2)
            first = {}
            for path in order[1:] + ["overview"]:
                first[path] = round(navigate(page, path)[0], 2)
                if args.screenshots:
                    args.screenshots.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(args.screenshots / f"{path}.png"))
            results["first_visit_content_s"] = first
            print("first visits (caches cold):", first, flush=True)

            nav = {p: {"content": [], "done": []} for p in order}
            for _ in range(args.repeats):
                for path in order[1:] + ["overview"]:
                    c, d = navigate(page, path)
                    nav[path]["content"].append(c)
                    nav[path]["done"].append(d)
            results["navigation"] = {p: {"content": summarise(v["content"]), "done": summarise(v["done"])}
                                     for p, v in nav.items()}

            if "samples" in order:
                results["samples_filter_change"] = alternate(page, "samples", samples_filter_change,
                                                             ("Wrong", "All"), args.repeats)
            if "embeddings" in order:
                results["embeddings_colour_change"] = alternate(page, "embeddings", embeddings_colour_change,
                                                                ("Split", "Correct / wrong"), args.repeats)
            browser.close()
    finally:
        stop_server(proc)

    print(json.dumps(results, indent=2))
    print("\n| what | median | best | worst |\n|---|---|---|---|")
    for p in order:
        r = results["navigation"][p]
        print(f"| {PAGES[p][0]}: main content after navigation | {r['content']['median_s']:.2f} s | "
              f"{r['content']['best_s']:.2f} s | {r['content']['worst_s']:.2f} s |")
    for key, label in (("samples_filter_change", "Samples: filter change"),
                       ("embeddings_colour_change", "Embeddings: colour change")):
        if key not in results:
            continue
        r = results[key]
        print(f"| {label} | {r['median_s']:.2f} s | {r['best_s']:.2f} s | {r['worst_s']:.2f} s |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
