"""How fast a person can review: keyboard decisions and a bulk decision, timed in chromium.

    python benchmarks/bench_review.py [--people 2700 --eval-images 12600] [--work /tmp/bench_review]
                                      [--decisions 20] [--bulk 1000]

Builds (once, kept in --work) a seed-layout dataset of flat-colour images at the given scale
(2,700 people x 7 + 12,600 eval = 31,500 images is the real set's size), a synthetic run around
its labels (tests/test_app_support.write_synthetic_run: predictions, embeddings, the merged review
queue), starts `streamlit run app.py` on it and drives Label noise with playwright:

- keyboard: --decisions decisions by key (K keep / S skip in turn); each is timed from the key press
  until the next item's card is shown, and until the page is idle (the rerun finished);
- bulk: "Decide many at once" on the mask items, the score threshold picked so --bulk items are
  shown, "Accept each item's suggestion", confirmed; timed from the click until the page says it saved them;
- store: ReviewStore.record_many of --bulk decisions, in-process.

Prints a table (median / max seconds) for BENCHMARKS.md. The images are not faces: this measures
the app, not the model.
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]
ITEM = ".st-key-label_noise_item_0"


def build(work: Path, people: int, eval_images: int) -> tuple[Path, Path, object]:
    from audit.dataset_index import index_dataset
    from test_app_support import write_seed_dataset, write_synthetic_run

    data, ws = work / "data", work / "workspace"
    if not (data / "images").is_dir():
        t = time.perf_counter()
        write_seed_dataset(data, people=people, eval_images=eval_images)
        print(f"dataset drawn in {time.perf_counter() - t:.0f} s", flush=True)
    index = index_dataset(data)
    run = ws / "runs" / "bench"
    if not (run / "suspects.parquet").is_file():
        t = time.perf_counter()
        write_synthetic_run(index, run)
        print(f"run + review queue in {time.perf_counter() - t:.0f} s", flush=True)
    return data, ws, index


def start(ws: Path, data: Path, port: int, log: Path):
    env = dict(os.environ, MASK_AUDIT_WORKSPACE=str(ws), MASK_AUDIT_DATA=str(data))
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=REPO, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("streamlit did not start")


def idle(page) -> None:
    """The rerun finished: no 'running' status and no element still marked stale (the status can
    clear a moment before the last elements are replaced)."""
    page.wait_for_function("""() => { const w = document.querySelector('[data-testid="stStatusWidget"]');
        return !!document.querySelector('[data-testid="stApp"]') && !(w && /stop|running/i.test(w.innerText))
            && !document.querySelector('[data-stale="true"]'); }""",
                           timeout=300_000)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=2700)
    ap.add_argument("--eval-images", type=int, default=12600)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_review"))
    ap.add_argument("--decisions", type=int, default=20)
    ap.add_argument("--bulk", type=int, default=1000)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--shots", type=Path, default=None, help="folder for screenshots")
    args = ap.parse_args()
    import pandas as pd
    from playwright.sync_api import sync_playwright

    from audit.reviews import ReviewStore

    data, ws, index = build(args.work, args.people, args.eval_images)
    reviews = ws / "reviews.sqlite"
    for suffix in ("", "-wal", "-shm"):  # every measurement starts from no decisions
        Path(str(reviews) + suffix).unlink(missing_ok=True)
    queue = pd.read_parquet(ws / "runs" / "bench" / "suspects.parquet")
    print(f"{len(index.images):,} images, review queue {len(queue):,} items "
          f"({int(queue['flagged'].sum()):,} flagged); load: {os.getloadavg()[0]:.1f}", flush=True)

    proc, url = start(ws, data, args.port, args.work / "streamlit.log")
    key_to_card, key_to_idle, next_only, bulk_s = [], [], [], None
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(300_000)
            page.goto(url)
            page.wait_for_selector('h1:has-text("Overview")')
            idle(page)
            page.get_by_role("link", name="Label noise").click()
            page.wait_for_selector(ITEM)
            idle(page)
            page.mouse.click(700, 15)
            for i in range(args.decisions):
                old = page.locator(f"{ITEM} code").first.inner_text()
                t = time.perf_counter()
                page.keyboard.press("k" if i % 2 == 0 else "s")
                page.wait_for_function(
                    "([sel, old]) => { const c = document.querySelector(sel + ' code'); return c && c.innerText !== old; }",
                    arg=[ITEM, old], timeout=300_000)
                key_to_card.append(time.perf_counter() - t)
                idle(page)
                key_to_idle.append(time.perf_counter() - t)
            if args.shots:
                args.shots.mkdir(parents=True, exist_ok=True)
                time.sleep(2)  # let the last rerun's elements settle before the picture
                page.screenshot(path=str(args.shots / "label_noise_keyboard.png"), full_page=True)
            # the floor: the same page moving to the next item without saving anything (→)
            for _ in range(5):
                old = page.locator(f"{ITEM} code").first.inner_text()
                t = time.perf_counter()
                page.keyboard.press("ArrowRight")
                page.wait_for_function(
                    "([sel, old]) => { const c = document.querySelector(sel + ' code'); return c && c.innerText !== old; }",
                    arg=[ITEM, old], timeout=300_000)
                next_only.append(time.perf_counter() - t)
                idle(page)
            print(f"keyboard: key -> card median {statistics.median(key_to_card):.2f} s, max {max(key_to_card):.2f} s; "
                  f"key -> idle median {statistics.median(key_to_idle):.2f} s, max {max(key_to_idle):.2f} s", flush=True)
            stored = len(ReviewStore(reviews).latest(index.fingerprint))
            assert stored == args.decisions, f"{stored} decisions stored, {args.decisions} pressed"

            # bulk: the --bulk highest-scored undecided mask items
            decided = set(ReviewStore(reviews).latest(index.fingerprint)["item"])
            masks = queue[(queue["field"] == "mask") & queue["flagged"] & ~queue["item"].isin(decided)]
            if len(masks) < args.bulk:
                masks = queue[(queue["field"] == "mask") & ~queue["item"].isin(decided)]
                page.locator(".st-key-label_noise_flagged label").click()
                idle(page)
            scores = masks["score"].sort_values(ascending=False).to_numpy()
            threshold = float(scores[args.bulk - 1]) if len(scores) >= args.bulk else float(scores[-1])
            page.locator(".st-key-label_noise_bulk_on label").click()
            idle(page)
            page.locator(".st-key-label_noise_bulk_field").get_by_text("Mask").click()
            idle(page)
            box = page.locator(".st-key-label_noise_bulk_min_score input")
            box.fill(f"{threshold:.6f}")
            box.press("Enter")
            idle(page)
            # the default choice: accept each item's suggestion
            page.locator(".st-key-label_noise_bulk_confirm label").click()
            idle(page)
            label = page.locator(".st-key-label_noise_bulk_confirm").inner_text()
            button = page.locator(".st-key-label_noise_bulk_apply button")
            t = time.perf_counter()
            button.click()
            page.get_by_text("Saved: Accept each item's suggestion for", exact=False).first.wait_for(timeout=300_000)
            bulk_s = time.perf_counter() - t
            idle(page)
            bulk_idle = time.perf_counter() - t
            if args.shots:
                page.screenshot(path=str(args.shots / "label_noise_bulk.png"), full_page=True)
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
    n_bulk = len(ReviewStore(reviews).latest(index.fingerprint)) - args.decisions

    store = ReviewStore(args.work / "bench_store.sqlite")
    rows = [dict(item=f"img{i}.png", field="mask", decision="keep", given=0) for i in range(args.bulk)]
    t = time.perf_counter()
    store.record_many("bench", rows, reviewer="bench")
    record_s = time.perf_counter() - t
    Path(args.work / "bench_store.sqlite").unlink()

    print(f"\nscale: {len(index.images):,} images, queue {len(queue):,} items; load after: {os.getloadavg()[0]:.1f}")
    print("| measurement | n | median s | max s |\n|---|---|---|---|")
    print(f"| key press -> next item's card shown | {len(key_to_card)} | {statistics.median(key_to_card):.2f} | "
          f"{max(key_to_card):.2f} |")
    print(f"| → (next item, nothing saved): the page's floor | {len(next_only)} | "
          f"{statistics.median(next_only):.2f} | {max(next_only):.2f} |")
    print(f"| key press -> rerun finished (idle) | {len(key_to_idle)} | {statistics.median(key_to_idle):.2f} | "
          f"{max(key_to_idle):.2f} |")
    print(f"| bulk click -> 'Saved' shown ({n_bulk:,} items; {label.strip()[:60]}) | 1 | {bulk_s:.2f} | {bulk_idle:.2f} (idle) |")
    print(f"| ReviewStore.record_many, {args.bulk:,} decisions, in-process | 1 | {record_s:.3f} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
