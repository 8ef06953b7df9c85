"""`combogan serve`: a local web page that translates, and the HTTP API behind it.

    GET  /                                   the page (plain HTML and JS, no CDN: works offline)
    GET  /api/domains                        {"run", "step", "weights", "domains", ...}
    POST /api/translate?from=A&to=B          image bytes in, PNG out
    POST /api/translate?from=A&to=all        {"from", "results": {domain: "data:image/png;base64,…"}}
    GET  /healthz                            {"status": "ok"}

Bad input (not an image, truncated, empty, unknown domain, over --max-upload-mb) is answered
with a 4xx and a one-line JSON error, logged once; the server keeps serving. An upload with a
side over --max-side is scaled down first, and that is the size of what comes back; it is
translated as `combogan translate` does, at the training scale unless told otherwise.
Requests share one model: translation is serialised by a lock (PyTorch already spreads one
translation over every core). At most --max-queue translate requests are admitted at once; past
that a request gets 503 with Retry-After at once instead of waiting without bound.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run time.
import base64
import io
import logging
import math
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image

from ..data.images import BadImage, load_image, resize, to_model_range, to_uint8
from ..errors import UserError
from .translate import working_size
from .translator import Translator

if TYPE_CHECKING:
    from fastapi import FastAPI, Request

log = logging.getLogger("combogan.serve")
PAGE = Path(__file__).with_name("page.html")


# Smaller than translate's: every answer is a PNG (or several) sent over HTTP.
DEFAULT_MAX_SIDE = 1024
# Translate requests admitted at once (waiting for the model or running); past it a request is
# answered 503 with Retry-After at once rather than queued without bound.
DEFAULT_MAX_QUEUE = 32


class TranslateService:
    """The model behind the API: bytes in, PNG bytes out, one translation at a time.
    load_size: the shorter side images are translated at (default: the run's data.load_size,
    the training scale; 0: each upload's own size). max_queue: translate requests admitted at once."""

    def __init__(self, translator: Translator, max_upload_mb: float = 20, max_side: int = DEFAULT_MAX_SIDE, load_size: int | None = None,
                 max_queue: int = DEFAULT_MAX_QUEUE):
        self.tr, self.max_bytes, self.max_side, self.max_queue = translator, int(max_upload_mb * 2**20), max_side, max_queue
        self.load_size = translator.config.data.load_size if load_size is None else load_size or None
        self.lock = threading.Lock()
        self.admitted = 0  # requests waiting for the model or translating (counted on the event loop)
        self.seconds_per_request = 0.5  # a running mean, for Retry-After

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained."""
        return max(1, math.ceil(self.admitted * self.seconds_per_request))

    def decode(self, data: bytes) -> torch.Tensor:
        if not data:
            raise ValueError("empty upload: send the image file's bytes as the request body")
        if len(data) > self.max_bytes:
            raise OverflowError(f"upload of {len(data) / 2**20:.1f} MB is over the {self.max_bytes / 2**20:.0f} MB limit")
        try:
            img = load_image(io.BytesIO(data))
        except BadImage as exc:
            reason = str(exc).split(": ", 1)[-1]
            raise ValueError(f"not a readable image ({reason})") from None
        h, w = img.shape[-2:]
        if self.max_side and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            img = resize(img, (max(1, round(h * scale)), max(1, round(w * scale))))
        return img

    def translate(self, data: bytes, source: str, to: str) -> dict[str, bytes]:
        """{target: PNG bytes} for `to` (a domain or 'all')."""
        targets = self.tr.targets(source, [to])  # UserError for unknown names
        if not targets:
            raise ValueError(f"nothing to translate to: '{source}' is the only domain")
        img = self.decode(data)
        size = tuple(img.shape[-2:])
        work = working_size(*size, self.load_size, self.max_side)
        x = to_model_range(resize(img, work) if work != size else img)[None].to(self.tr.device)
        with self.lock:
            start = time.perf_counter()
            outs = self.tr.batch(x, source, targets)
            self.seconds_per_request = 0.8 * self.seconds_per_request + 0.2 * (time.perf_counter() - start)
        return {t: _png(_at(to_uint8(y[0]).cpu(), size)) for t, y in outs.items()}


def _at(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return img if tuple(img.shape[-2:]) == size else resize(img, size)


def _png(img: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, format="PNG")
    return buf.getvalue()


class ApiError(Exception):
    """A request the API refuses: its HTTP status, the one-line message sent back and any headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


async def _answer(service: TranslateService, request: "Request", source: str | None, to: str | None) -> dict[str, bytes]:
    """{target: PNG bytes} for a translate request, or ApiError."""
    from starlette.concurrency import run_in_threadpool

    if not source or not to:
        raise ApiError(400, "give ?from=DOMAIN&to=DOMAIN (or to=all)")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > service.max_bytes:
        raise ApiError(413, f"upload of {int(declared) / 2**20:.1f} MB is over the {service.max_bytes / 2**20:.0f} MB limit")
    if service.admitted >= service.max_queue:
        wait = service.retry_after()
        raise ApiError(503, f"busy: {service.admitted} requests ahead; retry in {wait} s", {"Retry-After": str(wait)})
    service.admitted += 1
    try:
        data = await request.body()
        # Not on the event loop: other requests (health checks, the page) keep being served.
        return await run_in_threadpool(service.translate, data, source, to)
    except OverflowError as exc:
        raise ApiError(413, str(exc)) from None
    except (UserError, ValueError) as exc:
        raise ApiError(400, str(exc)) from None
    finally:
        service.admitted -= 1


def create_app(service: TranslateService) -> "FastAPI":
    """The FastAPI app (combogan[serve]) around `service`."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import HTMLResponse, JSONResponse, Response
    except ImportError:
        raise UserError("combogan serve needs the serve extra: pip install 'combogan[serve]' (fastapi, uvicorn)") from None

    app = FastAPI(title="combogan", docs_url=None, redoc_url=None)
    tr = service.tr

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        log.warning("%d %s", status, message)  # once per bad request
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text())

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/api/domains")
    def domains() -> dict:
        return {"run": tr.run.name, "step": tr.step, "weights": tr.weights, "domains": tr.domains, "max_upload_mb": service.max_bytes / 2**20,
                "max_side": service.max_side}

    @app.post("/api/translate")
    async def translate(request: Request) -> Response:
        source, to = request.query_params.get("from"), request.query_params.get("to")
        try:
            pngs = await _answer(service, request, source, to)
        except ApiError as exc:
            return error(exc.status, exc.message, exc.headers)
        if to != "all":
            return Response(pngs[to], media_type="image/png")
        return JSONResponse({"from": source, "results": {t: "data:image/png;base64," + base64.b64encode(b).decode() for t, b in pngs.items()}})

    return app


def serve(run: str | Path | None, host: str = "127.0.0.1", port: int = 8000, device: str = "auto", max_upload_mb: float = 20,
          max_side: int = DEFAULT_MAX_SIDE, flip_average: bool = False, load_size: int | None = None, quiet: bool = False,
          max_queue: int = DEFAULT_MAX_QUEUE, weights: str = "auto") -> None:
    """Serve the page and the API until interrupted. quiet: no start-up lines and no request log."""
    try:
        import uvicorn
    except ImportError:
        raise UserError("combogan serve needs the serve extra: pip install 'combogan[serve]' (fastapi, uvicorn)") from None
    tr = Translator(run, device=device, announce=not quiet, flip_average=flip_average, weights=weights)
    service = TranslateService(tr, max_upload_mb, max_side, load_size, max_queue)
    app = create_app(service)
    if host in ("0.0.0.0", "::", ""):
        print(f"warning: listening on all interfaces ({host or '0.0.0.0'}): anyone who can reach this machine can use the model",
              flush=True)
    logging.basicConfig(level=logging.ERROR if quiet else logging.INFO, format="%(message)s")
    if not quiet:
        scale = f"shorter side {service.load_size} px" if service.load_size else "each upload's own size"
        print(f"serving {tr.run} ({', '.join(tr.domains)}) on http://{host}:{port}/, translating at {scale}", flush=True)
        tr.note_weights()
    uvicorn.run(app, host=host, port=port, log_level="warning")
