"""Soak of `combogan serve`: a real server process on 127.0.0.1 under a mix of good and bad
requests from concurrent clients. One JSON line.

    python tools/bench_serve.py --requests 10000 --clients 16 --burst-clients 64

The mix: valid images of several sizes (to one domain or to=all) and, one request in eight,
every kind of bad request (random bytes, unknown and '../' domains, missing parameters, an upload
over the limit, an empty body, GET, a path-traversal URL, a 900-megapixel PNG bomb, a truncated
PNG). Reported: answers by kind and status, connection errors, p50/p95/p99 latency of the valid
requests, requests/s, and the server's RSS after warm-up, half way and at the end. Then a burst
from --burst-clients clients: past the admission queue requests must get a prompt 503 with
Retry-After, and once the burst is over every request must succeed again.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image


def png(w: int, h: int, seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(w: int, h: int, seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid PNG header claiming 900 megapixels, with almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def requests(src: str, dst: str) -> tuple[list[tuple], list[tuple]]:
    """(good, bad): (kind, method, path, body, statuses it may get) per request kind."""
    t = f"/api/translate?from={src}&to="
    good = [("64px", "POST", t + dst, png(64, 64, 1)), ("256px", "POST", t + dst, png(256, 256, 2)),
            ("600x400 jpeg", "POST", t + dst, jpeg(600, 400, 3)), ("1500x1000 jpeg", "POST", t + dst, jpeg(1500, 1000, 4)),
            ("256px to=all", "POST", t + "all", png(256, 256, 5))]
    good = [(*g, {200}) for g in good]
    bad = [("random bytes", "POST", t + dst, os.urandom(5000), {400}),
           ("unknown domain", "POST", "/api/translate?from=mars&to=" + dst, png(32, 32, 6), {400}),
           ("'../' domain", "POST", "/api/translate?from=../../etc&to=" + dst, png(32, 32, 6), {400}),
           ("missing parameters", "POST", "/api/translate", png(32, 32, 6), {400}),
           ("25 MB upload", "POST", t + dst, os.urandom(25 * 2**20), {413}),
           ("empty body", "POST", t + dst, b"", {400}),
           ("GET", "GET", t + dst, None, {405}),
           ("path traversal", "GET", "/../../../../etc/passwd", None, {404}),
           ("900-megapixel PNG bomb", "POST", t + dst, bomb_png(), {400}),
           ("truncated PNG", "POST", t + dst, png(256, 256, 7)[:3000], {400})]
    return good, bad


def call(port: int, method: str, path: str, body: bytes | None) -> tuple[int | str, float, dict]:
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        r.read()
        return r.status, time.perf_counter() - start, dict(r.getheaders())
    except OSError as exc:  # refused, reset, timed out: a dropped connection
        return f"connection error: {type(exc).__name__}", time.perf_counter() - start, {}
    finally:
        conn.close()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(run: str, max_queue: int) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "combogan", "serve", "--run", run, "--port", str(port), "--device", "cpu", "-q",
                             "--max-queue", str(max_queue)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        if call(port, "GET", "/healthz", None)[0] == 200:
            return proc, port
        if proc.poll() is not None:
            raise SystemExit(f"error: the server did not start: {proc.stderr.read().decode()[-300:]}")
        time.sleep(0.2)
    raise SystemExit("error: the server did not start in 120 s")


def soak(port: int, pid: int, n: int, clients: int, rng: random.Random, good: list, bad: list) -> dict:
    plan = [rng.choice(bad) if i % 8 == 7 else rng.choice(good) for i in range(n)]
    for kind in bad:  # every bad kind at least once
        plan[rng.randrange(n)] = kind
    rss = {"after_warm_up": rss_mib(pid)}
    results: list = [None] * n
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for i, res in enumerate(pool.map(lambda r: call(port, r[1], r[2], r[3]), plan)):
            results[i] = res
            if i == n // 2:
                rss["middle"] = rss_mib(pid)
    wall = time.perf_counter() - t0
    rss["end"] = rss_mib(pid)
    by_kind: dict[str, Counter] = {}
    wrong = Counter()
    for (kind, _, _, _, ok), (status, _, _) in zip(plan, results):
        by_kind.setdefault(kind, Counter())[str(status)] += 1
        if status not in ok:
            wrong[f"{kind}: {status}"] += 1
    lat = sorted(seconds for (kind, *_), (status, seconds, _) in zip(plan, results) if status == 200)
    pct = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 1)  # noqa: E731
    return {"requests": n, "clients": clients, "wall_s": round(wall, 1), "requests_per_s": round(n / wall, 1),
            "answers": {k: dict(v) for k, v in by_kind.items()}, "unexpected": dict(wrong),
            "status_500": sum(str(s).startswith("5") for s, _, _ in results),
            "connection_errors": sum(str(s).startswith("connection") for s, _, _ in results),
            "valid_latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99)},
            "rss_mib": {k: round(v, 1) for k, v in rss.items()}, "rss_growth": round(rss["end"] / rss["after_warm_up"] - 1, 4)}


def burst(port: int, clients: int, seconds: float, body: bytes, path: str) -> dict:
    deadline = time.time() + seconds

    def client(_: int) -> list:
        out = []
        while time.time() < deadline:
            out.append(call(port, "POST", path, body))
        return out

    with ThreadPoolExecutor(clients) as pool:
        answers = [a for batch in pool.map(client, range(clients)) for a in batch]
    refused = [(s, t, h) for s, t, h in answers if s == 503]
    after = [call(port, "POST", path, body)[0] for _ in range(20)]
    return {"clients": clients, "requests": len(answers), "answers": dict(Counter(str(s) for s, _, _ in answers)),
            "refused_with_retry_after": sum("retry-after" in {k.lower() for k in h} for _, _, h in refused),
            "refused_latency_ms_p50_p99": [round(statistics.median(t for _, t, _ in refused) * 1000, 1),
                                           round(sorted(t for _, t, _ in refused)[int(0.99 * (len(refused) - 1))] * 1000, 1)] if refused else None,
            "after_the_burst": dict(Counter(str(s) for s in after))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/demo", help="a trained run (default: the one `make demo` writes)")
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--warm-up", type=int, default=500, help="requests of the same mix before the soak is measured")
    p.add_argument("--burst-clients", type=int, default=64)
    p.add_argument("--burst-seconds", type=float, default=30)
    p.add_argument("--max-queue", type=int, default=32, help="the server's --max-queue")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    from combogan.runs import rundir

    if not (Path(args.run) / rundir.MANIFEST).exists():
        sys.exit(f"error: no run at {args.run}: run `make demo` first, or pass --run")
    names = rundir.domain_names(rundir.read_manifest(Path(args.run)))
    good, bad = requests(names[0], names[-1])
    proc, port = start_server(args.run, args.max_queue)
    try:
        # Warm-up, with the soak's concurrency and mix: per-thread allocator arenas and caches grow
        # to their working size in the first concurrent requests.
        soak(port, proc.pid, args.warm_up, args.clients, random.Random(args.seed + 1), good, bad)
        report = {"soak": soak(port, proc.pid, args.requests, args.clients, random.Random(args.seed), good, bad)}
        report["burst"] = burst(port, args.burst_clients, args.burst_seconds, good[1][3], good[1][2])
        report["server_alive"] = proc.poll() is None and call(port, "GET", "/healthz", None)[0] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
