"""Screenshots for docs/screenshots of a running app: every page, a sample's detail, two accepted
suggestions on Label noise, then Export.

    MASK_AUDIT_WORKSPACE=WS streamlit run app.py --server.port 8599 --server.headless true &
    python benchmarks/shoot_docs.py http://localhost:8599 docs/screenshots

Uses Debian's chromium through playwright. Waits for each page to settle (no running script, no
skeletons, every image loaded and every plotly chart drawn, for one second) before the shot.
"""
import sys
import time

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
JS_BUSY = """() => {
  const w = document.querySelector('[data-testid="stStatusWidget"]');
  const running = w !== null && (w.innerText || '').includes('Stop');
  const skeletons = document.querySelectorAll('[data-testid="stSkeleton"]').length;
  const stale = document.querySelectorAll('[data-stale="true"]').length;
  const imgs = Array.from(document.querySelectorAll('img')).filter(i => !i.complete).length;
  const charts = document.querySelectorAll('[data-testid="stPlotlyChart"]').length;
  const drawn = document.querySelectorAll('[data-testid="stPlotlyChart"] .main-svg').length;
  return {running, skeletons, stale, imgs, charts, drawn};
}"""


def settle(page, timeout=120):
    """(seconds to the title, seconds until nothing is loading) after navigation."""
    t0 = time.time()
    page.wait_for_selector("h1", timeout=timeout * 1000)
    t_title = time.time() - t0
    quiet_since = None
    while time.time() - t0 < timeout:
        b = page.evaluate(JS_BUSY)
        busy = b["running"] or b["skeletons"] or b["stale"] or b["imgs"] or (b["charts"] and b["drawn"] < b["charts"])
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since > 1.0:
            return t_title, quiet_since - t0
        time.sleep(0.1)
    return t_title, float("nan")


def main():
    url, out = sys.argv[1], sys.argv[2]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1700})
        page.goto(url, wait_until="domcontentloaded"); settle(page)
        for name in ["overview", "confusion", "samples", "embeddings", "label_noise"]:
            page.goto(f"{url}/{name}" if name != "overview" else url, wait_until="domcontentloaded")
            print(name, settle(page))
            page.screenshot(path=f"{out}/{name}.png")
            if name == "samples":
                page.locator(".st-key-samples_open_0 button").click()
                page.wait_for_selector('[role="dialog"]'); settle(page)
                page.screenshot(path=f"{out}/samples_detail.png")
                page.keyboard.press("Escape"); settle(page)
            if name == "label_noise":
                for i in range(2):
                    page.locator(".st-key-label_noise_accept_0 button").click(); settle(page)
        page.goto(f"{url}/export", wait_until="domcontentloaded")
        print("export", settle(page))
        page.screenshot(path=f"{out}/export.png")
        browser.close()


if __name__ == "__main__":
    main()
