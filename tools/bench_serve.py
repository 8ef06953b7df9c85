"""Load check of `combogan serve`: N requests from C concurrent clients at 256 x 256, over real
HTTP on 127.0.0.1, repeated for --rounds. Prints p50/p95 latency, throughput and errors of the
first round, and the server's memory before it and after every round: the first concurrent round
grows it once (a malloc arena per serving thread), later rounds must leave it flat. One JSON line.

    python tools/bench_serve.py --run runs/demo --requests 200 --clients 8 --rounds 3
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import statistics
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import uvicorn
from PIL import Image

from combogan.apps.serve import TranslateService, create_app
from combogan.apps.translator import Translator


def rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    tr = Translator(args.run, device="cpu")
    source, target = tr.domains[0], tr.domains[-1]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/translate?from={source}&to={target}"
    server = uvicorn.Server(uvicorn.Config(create_app(TranslateService(tr)), log_level="error"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)).save(buf, format="PNG")
    body = buf.getvalue()

    def one(_: int) -> tuple[float, bool]:
        t = time.perf_counter()
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=120) as r:
                ok = r.status == 200 and r.read()[:8] == b"\x89PNG\r\n\x1a\n"
        except OSError:
            ok = False
        return time.perf_counter() - t, ok

    one(0)  # warm-up
    rss, errors = [rss_mib()], []
    for r in range(args.rounds):
        t = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(one, range(args.requests)))
        errors.append(sum(not ok for _, ok in results))
        rss.append(rss_mib())
        if r == 0:
            wall, lat = time.perf_counter() - t, sorted(x[0] for x in results)
    print(json.dumps({"requests": args.requests, "clients": args.clients, "size": args.size, "errors_per_round": errors,
                      "p50_ms": round(statistics.median(lat) * 1000, 1), "p95_ms": round(lat[int(0.95 * (len(lat) - 1))] * 1000, 1),
                      "requests_per_s": round(args.requests / wall, 2), "rss_mib_before_and_after_each_round": [round(m, 1) for m in rss],
                      "arch": {"ngf": tr.model.arch.ngf, "n_blocks": tr.model.arch.n_blocks}}))
    server.should_exit = True


if __name__ == "__main__":
    main()
