"""`combogan serve`: the API over real HTTP on 127.0.0.1 (every bad input answered with a 4xx
while the server keeps serving), concurrent requests, and the page in a real headless Chromium."""

import base64
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from combogan.apps.serve import TranslateService, create_app
from combogan.apps.translator import Translator

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = Path(os.environ.get("COMBOGAN_SCREENSHOT", "")) if os.environ.get("COMBOGAN_SCREENSHOT") else None


class Server:
    """uvicorn in a thread, on a socket bound to 127.0.0.1 by the test."""

    def __init__(self, service: TranslateService):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(service), log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            assert time.time() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.05)

    def request(self, path: str, data: bytes | None = None) -> tuple[int, str, bytes]:
        req = urllib.request.Request(self.url + path, data=data, method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.headers.get("content-type", ""), r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("content-type", ""), exc.read()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _png(size=(40, 28), seed=0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(trained_run):
    s = Server(TranslateService(Translator(trained_run, device="cpu"), max_upload_mb=0.05, max_side=64))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def page_server(trained_run):
    """The browser test's server: the tiny test run, or COMBOGAN_SCREENSHOT_RUN (a real run, for
    the README's screenshot: COMBOGAN_SCREENSHOT=docs/serve.png COMBOGAN_SCREENSHOT_RUN=demo/run
    COMBOGAN_SCREENSHOT_IMAGE=demo/data/test/summer/000001.png)."""
    run = os.environ.get("COMBOGAN_SCREENSHOT_RUN") or trained_run
    s = Server(TranslateService(Translator(run, device="cpu"), max_side=1024))
    yield s
    s.stop()


def test_api_translates_one_target_and_all(server):
    status, ctype, body = server.request("/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    info = json.loads(server.request("/api/domains")[2])
    assert info["domains"] == ["autumn", "spring", "summer", "winter"] and info["run"] == "seasons" and "step" in info
    # each domain's weights: a few updates are too few for the weight average (train.ema) to settle
    assert info["weights"] == dict.fromkeys(info["domains"], "live")
    status, ctype, body = server.request("/api/translate?from=summer&to=winter", _png())
    assert status == 200 and ctype == "image/png" and Image.open(io.BytesIO(body)).size == (40, 28)
    status, ctype, body = server.request("/api/translate?from=summer&to=all", _png())
    results = json.loads(body)["results"]
    assert status == 200 and sorted(results) == ["autumn", "spring", "winter"]
    for url in results.values():
        assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size == (40, 28)
    # larger than --max-side (64): resized down first, aspect kept
    assert Image.open(io.BytesIO(server.request("/api/translate?from=summer&to=winter", _png((100, 50)))[2])).size == (64, 32)


def test_served_images_are_what_translate_makes(trained_run, tmp_path):
    """At the training scale by default, or the upload's own size (load_size 0), with or without
    flip averaging: the same pixels as `combogan translate` with the same flags."""
    from combogan.cli import main

    png = _png((24, 16))
    (tmp_path / "in.png").write_bytes(png)
    for flags, load_size, flip in (((), None, False), (("--native-size",), 0, False), (("--native-size", "--flip-average"), 0, True)):
        out = tmp_path / "-".join(flags or ("default",))
        assert main(["translate", "--run", str(trained_run), "--from", "summer", "--to", "winter", str(tmp_path / "in.png"), "--out", str(out),
                     "--device", "cpu", "-q", *flags]) == 0
        tr = Translator(trained_run, device="cpu", flip_average=flip)
        served = TranslateService(tr, load_size=load_size).translate(png, "summer", "winter")["winter"]
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(served))), np.asarray(Image.open(out / "in.png"))), flags
    native = TranslateService(Translator(trained_run, device="cpu"), load_size=0).translate(png, "summer", "winter")["winter"]
    want = Translator(trained_run, device="cpu").translate(Image.open(io.BytesIO(png)), "summer", "winter")  # the Python API: own size
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(native))), np.asarray(want))


def test_bad_input_is_a_4xx_and_the_server_keeps_serving(server, caplog):
    truncated = _png()[:200]
    cases = [
        ("/api/translate?from=summer&to=winter", b"this is not an image", 400, "not a readable image"),
        ("/api/translate?from=summer&to=winter", truncated, 400, "not a readable image"),
        ("/api/translate?from=summer&to=winter", b"", 400, "empty upload"),
        ("/api/translate?from=mars&to=winter", _png(), 400, "unknown domain 'mars'"),
        ("/api/translate?from=summer&to=pluto", _png(), 400, "unknown domain 'pluto'"),
        ("/api/translate?to=winter", _png(), 400, "give ?from="),
        ("/api/translate?from=summer&to=winter", os.urandom(80_000), 413, "over the 0 MB limit"),
    ]
    with caplog.at_level(logging.WARNING, logger="combogan.serve"):
        for path, data, code, match in cases:
            status, ctype, body = server.request(path, data)
            error = json.loads(body)["error"]
            assert status == code and ctype == "application/json" and match in error and "\n" not in error, (path, status, error)
            assert server.request("/healthz")[0] == 200
    assert len([r for r in caplog.records if r.name == "combogan.serve"]) == len(cases)  # logged once each


def test_concurrent_requests_are_safe(server):
    serial = {seed: server.request("/api/translate?from=winter&to=autumn", _png(seed=seed))[2] for seed in range(4)}
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: (i % 4, server.request("/api/translate?from=winter&to=autumn", _png(seed=i % 4))), range(16)))
    for seed, (status, _, body) in got:
        assert status == 200 and body == serial[seed]  # no request saw another's tensors


def test_past_the_queue_a_prompt_503_with_retry_after_then_recovery(trained_run):
    """More concurrent requests than --max-queue: the extra ones are answered 503 with Retry-After
    at once (not after waiting their turn), and once the load drops every request succeeds."""
    tr = Translator(trained_run, device="cpu")
    real = tr.batch
    tr.batch = lambda *a, **kw: (time.sleep(0.5), real(*a, **kw))[1]  # a slow model: the queue fills
    s = Server(TranslateService(tr, max_queue=2))
    try:
        def timed(i):
            req = urllib.request.Request(s.url + "/api/translate?from=summer&to=winter", data=_png(seed=i), method="POST")
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    return r.status, None, time.perf_counter() - start
            except urllib.error.HTTPError as exc:
                return exc.code, exc.headers.get("retry-after"), time.perf_counter() - start

        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(timed, range(8)))
        busy = [g for g in got if g[0] == 503]
        assert {g[0] for g in got} == {200, 503} and len(busy) >= 4
        assert all(int(retry) >= 1 and seconds < 0.45 for _, retry, seconds in busy)  # prompt: no turn waited
        assert all(s.request("/api/translate?from=summer&to=winter", _png())[0] == 200 for _ in range(3))  # recovered
    finally:
        s.stop()


def test_all_interfaces_warns(trained_run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "combogan", "serve", "--run", str(trained_run), "--host", "0.0.0.0", "--port", str(port),
                             "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("warning: listening on all interfaces"), first
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="needs Debian's chromium (CI installs it)")
def test_the_page_in_a_real_browser(page_server, tmp_path):
    """Headless Chromium loads the page, uploads an image, and gets every other domain back at
    the image's size. A screenshot is saved (COMBOGAN_SCREENSHOT=path keeps it, for the README)."""
    assert CHROMIUM, "CI must run the browser test: chromium is missing (.ci/run installs it)"
    from playwright.sync_api import sync_playwright

    server = page_server
    image = tmp_path / "mountain.png"
    picture = os.environ.get("COMBOGAN_SCREENSHOT_IMAGE")
    image.write_bytes(Path(picture).read_bytes() if picture else _png((48, 36), seed=3))
    w, h = Image.open(image).size
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 500})
            page.goto(server.url + "/")
            page.wait_for_function("document.querySelectorAll('#source option').length === 4")
            info = json.loads(server.request("/api/domains")[2])
            assert f"run {info['run']} · step {info['step']}" in page.inner_text("#meta")
            page.select_option("#source", "summer")
            page.set_input_files("#file", str(image))
            page.wait_for_function("document.querySelectorAll('img.result').length === 3 && "
                                   "[...document.querySelectorAll('img.result')].every(i => i.complete && i.naturalWidth > 0)", timeout=60_000)
            sizes = page.eval_on_selector_all("img.result", "imgs => imgs.map(i => [i.dataset.domain, i.naturalWidth, i.naturalHeight])")
            assert sorted(sizes) == [["autumn", w, h], ["spring", w, h], ["winter", w, h]]
            assert page.eval_on_selector_all("figcaption a", "links => links.map(a => a.download)") == [
                f"mountain_{d}.png" for d in ("autumn", "spring", "winter")]
            shot = SCREENSHOT or tmp_path / "page.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 1000
        finally:
            browser.close()
