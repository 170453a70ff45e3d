"""Speed of the data-quality checks (audit/quality.py) beside a decode-only pass over the same files.

    python benchmarks/bench_quality_speed.py DATA [--run RUN] [--scales 0.25,0.5,1] [--workers N] [--json]

For each scale (a prefix of the index, train people whole), in one process and on the same
thread count: a decode-only pass (read + full Pillow decode of every file), the signals pass
(the same read and decode plus sha256, pHash, thumbnail and cleanvision's measurements), on
threads and then on spawned processes, the decode-only pass again (both warm in the page cache; the ratio uses the faster decode), then the
checks on the signals (duplicates with the indexed near-duplicate lookup, cleanvision scoring,
person checks) and, with --run, the embedding-based person checks alone. The issue's target: at
31,500 images the hash + cleanvision pass within 2x of decode-only, embedding checks under 20 s.
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


def decode_only(root: Path, paths: list[str], workers: int) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_decode_one, [str(root / p) for p in paths], chunksize=32))
    return time.perf_counter() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--run", default=None)
    parser.add_argument("--scales", default="0.25,0.5,1")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import numpy as np

    from audit.dataset_index import index_dataset
    from audit.quality import (
        QualityConfig, find_quality_issues, image_signals, person_findings, run_embeddings_for,
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
        d1 = decode_only(index.root, paths, workers)
        t0 = time.perf_counter()
        signals = image_signals(index.root, paths, config=config, workers=workers, processes=False)
        t_signals = time.perf_counter() - t0
        t0 = time.perf_counter()
        image_signals(index.root, paths, config=config, workers=workers, processes=True)
        t_signals_proc = time.perf_counter() - t0
        d2 = decode_only(index.root, paths, workers)
        t0 = time.perf_counter()
        findings = find_quality_issues(index.root, sub, signals, config=config)
        t_checks = time.perf_counter() - t0
        row = {"images": n, "workers": workers, "decode_s": round(min(d1, d2), 2), "decode_first_s": round(d1, 2),
               "signals_s": round(t_signals, 2), "ratio": round(t_signals / min(d1, d2), 2),
               "signals_processes_s": round(t_signals_proc, 2),
               "ratio_processes": round(t_signals_proc / min(d1, d2), 2),
               "checks_s": round(t_checks, 2), "findings": int(len(findings))}
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
