"""`data fetch` against a real HTTP server on 127.0.0.1 (Range support for resume)."""

import http.server
import threading
import zipfile

import pytest
from PIL import Image

from combogan.cli import main
from combogan.data.fetch import fetch, safe_extract
from combogan.data.layouts import discover
from combogan.errors import UserError


class RangeHandler(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    requests: list = []

    def do_GET(self):  # noqa: N802
        data = self.files.get(self.path)
        self.requests.append((self.path, self.headers.get("Range")))
        if data is None:
            self.send_response(404)
            self.end_headers()
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    RangeHandler.files, RangeHandler.requests = {}, []
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _official_zip(path, k=4, n=3):
    png = path.parent / "x.png"
    Image.new("RGB", (32, 32), (9, 9, 9)).save(png)
    with zipfile.ZipFile(path, "w") as z:
        for i in range(k):
            for split in ("train", "test"):
                for j in range(n):
                    z.write(png, f"alps_seasons/{split}{i}/{j}.png")
    return path.read_bytes()


def test_fetch_unzips_and_names_domains(tmp_path, server):
    RangeHandler.files["/alps.zip"] = _official_zip(tmp_path / "src.zip")
    folder = fetch("alps_seasons", tmp_path / "data", url=server + "/alps.zip", progress=False)
    assert folder == tmp_path / "data" and (folder / "train0").is_dir()  # the zip's top folder is dropped
    assert sorted(p.name for p in folder.iterdir()) == ["domains.txt"] + [f"{s}{i}" for s in ("test", "train") for i in range(4)]
    layout = discover(folder)
    assert layout.names == ["spring", "summer", "autumn", "winter"]
    assert layout.counts()["winter"] == {"train": 3, "test": 3}
    assert not (tmp_path / "data" / "alps_seasons.zip").exists()


def test_fetch_resumes_a_partial_download(tmp_path, server):
    data = _official_zip(tmp_path / "src.zip")
    RangeHandler.files["/alps.zip"] = data
    out = tmp_path / "data"
    out.mkdir()
    (out / "alps_seasons.zip.part").write_bytes(data[:1000])
    fetch("alps_seasons", out, url=server + "/alps.zip", progress=False)
    assert RangeHandler.requests == [("/alps.zip", "bytes=1000-")]
    assert (out / "train3" / "0.png").is_file()


def test_zip_slip_rejected(tmp_path, server):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("alps_seasons/train0/ok.png", b"x")
        z.writestr("../../escaped.txt", b"pwned")
    with pytest.raises(UserError, match="zip-slip"):
        safe_extract(evil, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out" / "alps_seasons").exists()
    RangeHandler.files["/evil.zip"] = evil.read_bytes()
    with pytest.raises(UserError, match="zip-slip"):
        fetch("alps_seasons", tmp_path / "d2", url=server + "/evil.zip", progress=False)
    abs_zip = tmp_path / "abs.zip"
    with zipfile.ZipFile(abs_zip, "w") as z:
        z.writestr("/etc/evil", b"x")
    with pytest.raises(UserError, match="unsafe path"):
        safe_extract(abs_zip, tmp_path / "out2")


def test_checksum_http_errors_and_offline(tmp_path, server, capsys):
    RangeHandler.files["/alps.zip"] = _official_zip(tmp_path / "src.zip")
    with pytest.raises(UserError, match="checksum mismatch"):
        fetch("alps_seasons", tmp_path / "a", url=server + "/alps.zip", sha256="0" * 64, progress=False)
    with pytest.raises(UserError, match="HTTP 404"):
        fetch("alps_seasons", tmp_path / "b", url=server + "/missing.zip", progress=False)
    code = main(["data", "fetch", "alps_seasons", str(tmp_path / "c"), "--url", "http://127.0.0.1:9/none.zip", "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "data synth" in err and len(err.strip().splitlines()) == 1


def test_fetch_refuses_to_mix_with_existing_folders(tmp_path, server):
    RangeHandler.files["/alps.zip"] = _official_zip(tmp_path / "src.zip")
    out = tmp_path / "data"
    (out / "train0").mkdir(parents=True)
    (out / "train0" / "mine.png").write_bytes(b"keep me")
    with pytest.raises(UserError, match="already holds train0"):
        fetch("alps_seasons", out, url=server + "/alps.zip", progress=False)
    assert (out / "train0" / "mine.png").read_bytes() == b"keep me" and (out / "alps_seasons.zip").is_file()
