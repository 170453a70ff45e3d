"""Speed of the data-quality checks (audit/quality.py) beside a decode-only pass over the same files.

    python benchmarks/bench_quality_speed.py DATA [--run RUN] [--scales 0.25,0.5,1] [--workers N]
        [--processes] [--json]

For each scale (a prefix of the index, train people whole), in one process and on the same
thread count: a decode-only pass (read + full Pillow decode of every file), a reduced decode-only
pass (read + decode as the signals pass does it: JPEG straight to a quarter per side, PNG in full
then reduced 4x), the signals pass (that read and decode plus sha256, pHash, thumbnail and
cleanvision's measurements) on threads (and with --processes on spawned processes too), the
decode-only pass again (all warm in the page cache; the ratio uses the faster full decode), then
the checks on the signals (duplicates: every close thumbnail pair by the bounded matrix-product
search and the aligned confirmation of those pairs; cleanvision scoring, person checks, face
leaks; `total_ratio` = signals on threads + checks over decode-only, `total_ratio_as_run` the same
with the signals pass `quality` runs at that size: processes from PROCESS_MIN_IMAGES on, so
--processes is needed there) and, with --run, the
embedding-based person checks alone. The issue's target: at 31,500 images the hash + cleanvision
pass within 2x of decode-only, embedding checks under 20 s.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _decode_one(path: str) -> int:
    from PIL import Image

    with open(path, "rb") as fh:
        data = fh.read()
    import io

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.size[0]


def _decode_reduced_one(path: str) -> int:
    from PIL import Image

    with open(path, "rb") as fh:
        data = fh.read()
    import io

    with Image.open(io.BytesIO(data)) as im:
        if im.format == "JPEG":
            im.draft(None, (im.size[0] // 4, im.size[1] // 4))
            im.load()
            return im.size[0]
        im.load()
        return im.reduce(4).size[0]


def timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process: all its threads). On a shared box the
    wall time depends on the others' load; the CPU time much less."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - w0, time.process_time() - c0


def decode_only(root: Path, paths: list[str], workers: int, one=_decode_one) -> None:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, [str(root / p) for p in paths], chunksize=32))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--run", default=None)
    parser.add_argument("--scales", default="0.25,0.5,1")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--processes", action="store_true", help="also time the signals pass on spawned processes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import numpy as np

    from audit.dataset_index import index_dataset
    from audit.quality import (
        PROCESS_MIN_IMAGES, QualityConfig, find_quality_issues, image_signals, person_findings, run_embeddings_for,
    )

    workers = args.workers or os.cpu_count() or 1
    index = index_dataset(args.data)
    run = None
    if args.run:
        from audit.runs import Run

        run = Run.open(args.run)
    config = QualityConfig()
    rows = []
    for scale in [float(s) for s in args.scales.split(",")]:
        images = index.images
        n = max(2, int(round(len(images) * scale)))
        sub = images.iloc[:n].reset_index(drop=True)
        paths = sub["path"].tolist()
        _, d1, c1 = timed(decode_only, index.root, paths, workers)
        _, d_reduced, c_reduced = timed(decode_only, index.root, paths, workers, _decode_reduced_one)
        signals, t_signals, c_signals = timed(image_signals, index.root, paths, config=config, workers=workers,
                                              processes=False)
        t_signals_proc = None
        if args.processes:
            t0 = time.perf_counter()
            image_signals(index.root, paths, config=config, workers=workers, processes=True)
            t_signals_proc = time.perf_counter() - t0
        _, d2, c2 = timed(decode_only, index.root, paths, workers)
        t0 = time.perf_counter()
        findings = find_quality_issues(index.root, sub, signals, config=config)
        t_checks = time.perf_counter() - t0
        row = {"images": n, "workers": workers, "decode_s": round(min(d1, d2), 2), "decode_first_s": round(d1, 2),
               "decode_reduced_s": round(d_reduced, 2),
               "signals_s": round(t_signals, 2), "ratio": round(t_signals / min(d1, d2), 2),
               "ratio_to_reduced_decode": round(t_signals / d_reduced, 2),
               "decode_cpu_s": round(min(c1, c2), 2), "decode_reduced_cpu_s": round(c_reduced, 2),
               "signals_cpu_s": round(c_signals, 2), "ratio_cpu": round(c_signals / min(c1, c2), 2),
               "checks_s": round(t_checks, 2), "findings": int(len(findings)),
               # the whole `quality` run (signals + checks) against the same decode-only pass
               "total_ratio": round((t_signals + t_checks) / min(d1, d2), 2),
               "loadavg_1min": round(os.getloadavg()[0], 2)}
        if t_signals_proc is not None:
            row["signals_processes_s"] = round(t_signals_proc, 2)
            row["ratio_processes"] = round(t_signals_proc / min(d1, d2), 2)
        # what `python -m audit quality` runs: processes from PROCESS_MIN_IMAGES images on
        as_run = t_signals_proc if n >= PROCESS_MIN_IMAGES and workers > 1 else t_signals
        if as_run is not None:
            row["total_ratio_as_run"] = round((as_run + t_checks) / min(d1, d2), 2)
        if run is not None:
            t0 = time.perf_counter()
            emb, shown = run_embeddings_for(index, run)
            emb_sub = emb[:n]
            person_findings(sub, emb_sub, config, shown_mask=shown[:n])
            row["embedding_checks_s"] = round(time.perf_counter() - t0, 2)
            del emb
        rows.append(row)
        if not args.json:
            print(json.dumps(row), flush=True)
    load = os.getloadavg()
    result = {"data": str(index.root), "rows": rows, "loadavg": [round(x, 2) for x in load]}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"load average during the run (1/5/15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    _ = np  # numpy is imported for the library's sake
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
