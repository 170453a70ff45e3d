"""The real first start, repeated: `streamlit run app.py` on an empty workspace, opened in
chromium, until the Overview shows the demo's charts; then first starts killed mid-build (SIGTERM
or SIGKILL of the server alone) and the start after each.

    python benchmarks/bench_first_start.py [--starts 20] [--kills 3] [--out /tmp/first-start]

Prints a markdown table per part for BENCHMARKS.md (issue #11). Needs Debian's chromium and
playwright, like tests/test_first_start.py, whose helpers it uses.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from browser_support import (CHROMIUM, CHROMIUM_ARGS, STOP_WITHIN_S, demo_job_status, pid_alive,  # noqa: E402
                             reach_overview, start_server, stop_and_time, stop_server, wait_for)


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def fresh_starts(browser, out: Path, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        base = out / f"start{i:02d}"
        row = {"try": i + 1, "load": load()}
        proc, url = start_server(base / "workspace", None, base.with_suffix(".log"))
        try:
            row["overview_s"] = reach_overview(browser, url)
            row["ok"] = True
        except Exception as err:  # a failure is a result here: count it, keep going
            row["ok"], row["error"] = False, str(err).splitlines()[0][:120]
        finally:
            row["sigterm_s"] = stop_and_time(proc, signal.SIGTERM)
            stop_server(proc)
        print(row, flush=True)
        rows.append(row)
    return rows


def killed_starts(browser, out: Path, n: int, sig: signal.Signals) -> list[dict]:
    rows = []
    for i in range(n):
        base = out / f"{sig.name.lower()}{i:02d}"
        ws = base / "workspace"
        row = {"try": i + 1, "signal": sig.name}
        proc, url = start_server(ws, None, base.with_suffix(".log"))
        context = browser.new_context()
        try:
            context.new_page().goto(url)
            wait_for(lambda: demo_job_status(ws).get("done", 0) > 0, 120)
            # Kill at a different moment of the build each try: early drawing, late drawing, predicting.
            time.sleep(i * 6.0)
            status = demo_job_status(ws)
            row["killed_at"] = f"{status.get('message', '?')} {status.get('done', 0)}/{status.get('total', 0)}"
            row["stop_s"] = stop_and_time(proc, sig)
            row["job_stopped"] = wait_for(lambda: not pid_alive(status.get("pid", -1)), STOP_WITHIN_S)
        finally:
            context.close()
            stop_server(proc)
        proc, url = start_server(ws, None, base.with_suffix(".next.log"))
        try:
            row["next_overview_s"] = reach_overview(browser, url)
            row["recovered"] = not list(ws.glob(".demo.building-*")) and demo_job_status(ws).get("state") == "done"
        except Exception as err:
            row["recovered"], row["error"] = False, str(err).splitlines()[0][:120]
        finally:
            stop_server(proc)
        print(row, flush=True)
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--kills", type=int, default=3, help="tries per signal (SIGTERM, SIGKILL)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/first-start"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    from playwright.sync_api import sync_playwright

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"commit {commit}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, load {load()}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        starts = fresh_starts(browser, args.out, args.starts)
        kills = [r for sig in (signal.SIGTERM, signal.SIGKILL) for r in killed_starts(browser, args.out, args.kills, sig)]
        browser.close()

    ok = [r["overview_s"] for r in starts if r["ok"]]
    print("\n| fresh starts | reached the Overview | median to Overview | max | SIGTERM stop, max |")
    print("|---|---|---|---|---|")
    print(f"| {len(starts)} | {len(ok)} | {statistics.median(ok):.0f} s | {max(ok):.0f} s | "
          f"{max(r['sigterm_s'] for r in starts):.1f} s |" if ok else f"| {len(starts)} | 0 | - | - | - |")
    print("\n| signal | killed at | server stopped in | build stopped with it | next start reached the Overview |")
    print("|---|---|---|---|---|")
    for r in kills:
        print(f"| {r['signal']} | {r.get('killed_at', '?')} | {r.get('stop_s', float('nan')):.1f} s | "
              f"{'yes' if r.get('job_stopped') else 'NO'} | "
              f"{'yes, ' + format(r['next_overview_s'], '.0f') + ' s' if r.get('recovered') else 'NO'} |")
    return 0 if len(ok) == len(starts) and all(r.get("recovered") and r.get("job_stopped") for r in kills) else 1


if __name__ == "__main__":
    raise SystemExit(main())
