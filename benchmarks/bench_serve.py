"""Model server vs the in-process call, on the same images: requests/s and p50/p95 latency.

    python benchmarks/bench_serve.py [--weights weights/demo] [--data DIR] [--requests 200]
        [--clients 1 8] [--device cpu] [--max-batch-size 8] [--batch-timeout 0.005] [--threads 1]
        [--json OUT]

Starts `python -m audit serve` on a free loopback port (a subprocess in its own session, stopped at
the end), sends one image per request from 1 and 8 concurrent clients (threads, one HTTP session
each), and times `ImagePredictor.predict` (what the app runs in-process, and what the server runs)
on the same images, one image per call. Without --data it draws a small demo dataset into a
temporary folder. Bounded: every setting sends exactly --requests requests.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_images(data: Path | None, n: int, tmp: Path) -> list[bytes]:
    if data is None:
        from audit.demo_data import make_demo

        data = tmp / "demo"
        make_demo(data, people=8, eval_images=24, seed=7, workers=1)
    files = sorted(p for p in (Path(data) / "images").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return [files[i % len(files)].read_bytes() for i in range(n)]


def summary(latencies_s: list[float], wall_s: float) -> dict:
    ms = np.asarray(latencies_s) * 1000
    return {"requests": len(ms), "requests_per_s": round(len(ms) / wall_s, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1)}


def bench_in_process(weights: str, images: list[bytes], device: str, threads: int) -> dict:
    from audit.serving import ImagePredictor

    predictor = ImagePredictor(weights, device=device, cpu_threads=threads)
    predictor.predict([predictor.prepare(images[0])])  # warm-up
    latencies = []
    t0 = time.perf_counter()
    for data in images:
        t = time.perf_counter()
        predictor.predict([predictor.prepare(data)])
        latencies.append(time.perf_counter() - t)
    return summary(latencies, time.perf_counter() - t0)


def bench_server(url: str, images: list[bytes], clients: int) -> dict:
    from audit.model_client import ModelClient

    pool = [ModelClient(url) for _ in range(clients)]
    pool[0].predict([images[0]])  # warm-up
    shares = [images[i::clients] for i in range(clients)]

    def run(k: int) -> list[float]:
        out = []
        for data in shares[k]:
            t = time.perf_counter()
            pool[k].predict([data])
            out.append(time.perf_counter() - t)
        return out

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as ex:
        latencies = [x for part in ex.map(run, range(clients)) for x in part]
    return summary(latencies, time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(REPO / "weights" / "demo"))
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-timeout", type=float, default=0.005)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, in-process and in the server worker")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import requests

    results = {"load_before": os.getloadavg(), "requests": args.requests, "device": args.device,
               "max_batch_size": args.max_batch_size, "batch_timeout": args.batch_timeout, "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        images = sample_images(args.data, args.requests, Path(tmp))
        results["in_process"] = bench_in_process(args.weights, images, args.device, args.threads)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = open(Path(tmp) / "serve.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "audit", "serve", "--weights", args.weights, "--port", str(port),
                                 "--device", args.device, "--max-batch-size", str(args.max_batch_size),
                                 "--batch-timeout", str(args.batch_timeout), "--threads", str(args.threads)],
                                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            t0 = time.perf_counter()
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"server exited: {(Path(tmp) / 'serve.log').read_text()[-2000:]}")
                try:
                    if requests.get(url + "/health", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.perf_counter() - t0 > 300:
                    raise SystemExit("server not ready after 300 s")
                time.sleep(0.5)
            results["server_start_s"] = round(time.perf_counter() - t0, 1)
            for clients in args.clients:
                results[f"server_{clients}_clients"] = bench_server(url, images, clients)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
    results["load_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    print("\n| path | clients | requests/s | p50 ms | p95 ms |\n|---|---|---|---|---|")
    print(f"| in-process `ImagePredictor.predict`, 1 image/call | 1 | {results['in_process']['requests_per_s']} | "
          f"{results['in_process']['p50_ms']} | {results['in_process']['p95_ms']} |")
    for clients in args.clients:
        r = results[f"server_{clients}_clients"]
        print(f"| `serve` over loopback HTTP, 1 image/request | {clients} | {r['requests_per_s']} | {r['p50_ms']} | {r['p95_ms']} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
