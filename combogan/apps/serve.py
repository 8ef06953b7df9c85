"""`combogan serve`: a local web page that translates, and the HTTP API behind it.

    GET  /                                   the page (plain HTML and JS, no CDN: works offline)
    GET  /api/domains                        {"run", "step", "domains"}
    POST /api/translate?from=A&to=B          image bytes in, PNG out
    POST /api/translate?from=A&to=all        {"from", "results": {domain: "data:image/png;base64,…"}}
    GET  /healthz                            {"status": "ok"}

Bad input (not an image, truncated, empty, unknown domain, over --max-upload-mb) is answered
with a 4xx and a one-line JSON error, logged once; the server keeps serving. Inputs with a side
over --max-side are resized down first. Requests share one model: translation is serialised
by a lock (PyTorch already spreads one translation over every core).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run time.
import base64
import io
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from ..data.images import BadImage, load_image, to_model_range, to_uint8
from ..errors import UserError
from .translator import Translator

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("combogan.serve")
PAGE = Path(__file__).with_name("page.html")


class TranslateService:
    """The model behind the API: bytes in, PNG bytes out, one translation at a time."""

    def __init__(self, translator: Translator, max_upload_mb: float = 20, max_side: int = 1024):
        self.tr, self.max_bytes, self.max_side = translator, int(max_upload_mb * 2**20), max_side
        self.lock = threading.Lock()

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
            img = TF.resize(img, [max(1, round(h * scale)), max(1, round(w * scale))], antialias=True)
        return img

    def translate(self, data: bytes, source: str, to: str) -> dict[str, bytes]:
        """{target: PNG bytes} for `to` (a domain or 'all')."""
        targets = self.tr.targets(source, [to])  # UserError for unknown names
        if not targets:
            raise ValueError(f"nothing to translate to: '{source}' is the only domain")
        img = self.decode(data)
        x = to_model_range(img)[None].to(self.tr.device)
        with self.lock:
            outs = self.tr.batch(x, source, targets)
        return {t: _png(to_uint8(y[0]).cpu()) for t, y in outs.items()}


def _png(img: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, format="PNG")
    return buf.getvalue()


def create_app(service: TranslateService) -> "FastAPI":
    """The FastAPI app (combogan[serve]) around `service`."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import HTMLResponse, JSONResponse, Response
    except ImportError:
        raise UserError("combogan serve needs the serve extra: pip install 'combogan[serve]' (fastapi, uvicorn)") from None

    app = FastAPI(title="combogan", docs_url=None, redoc_url=None)
    tr = service.tr

    def error(status: int, message: str) -> JSONResponse:
        log.warning("%d %s", status, message)  # once per bad request
        return JSONResponse({"error": message}, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text())

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/api/domains")
    def domains() -> dict:
        return {"run": tr.run.name, "step": tr.step, "domains": tr.domains, "max_upload_mb": service.max_bytes / 2**20,
                "max_side": service.max_side}

    @app.post("/api/translate")
    async def translate(request: Request) -> Response:
        source, to = request.query_params.get("from"), request.query_params.get("to")
        if not source or not to:
            return error(400, "give ?from=DOMAIN&to=DOMAIN (or to=all)")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > service.max_bytes:
            return error(413, f"upload of {int(declared) / 2**20:.1f} MB is over the {service.max_bytes / 2**20:.0f} MB limit")
        data = await request.body()
        try:
            # Not on the event loop: other requests (health checks, the page) keep being served.
            from starlette.concurrency import run_in_threadpool

            pngs = await run_in_threadpool(service.translate, data, source, to)
        except UserError as exc:
            return error(400, str(exc))
        except OverflowError as exc:
            return error(413, str(exc))
        except ValueError as exc:
            return error(400, str(exc))
        if to != "all":
            return Response(pngs[to], media_type="image/png")
        return JSONResponse({"from": source, "results": {t: "data:image/png;base64," + base64.b64encode(b).decode() for t, b in pngs.items()}})

    return app


def serve(run: str | Path | None, host: str = "127.0.0.1", port: int = 8000, device: str = "auto", max_upload_mb: float = 20,
          max_side: int = 1024, flip_average: bool = False) -> None:
    try:
        import uvicorn
    except ImportError:
        raise UserError("combogan serve needs the serve extra: pip install 'combogan[serve]' (fastapi, uvicorn)") from None
    service = TranslateService(Translator(run, device=device, announce=True, flip_average=flip_average), max_upload_mb, max_side)
    app = create_app(service)
    if host in ("0.0.0.0", "::", ""):
        print(f"warning: listening on all interfaces ({host or '0.0.0.0'}): anyone who can reach this machine can use the model",
              flush=True)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(f"serving {service.tr.run} ({', '.join(service.tr.domains)}) on http://{host}:{port}/", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
