"""A loopback HTTP server that plays a model host for the download tests and the ``portrait`` tests.

Every path serves the same 300 kB ``DATA`` (sha256 ``SHA``) with HTTP Range support, except the
names that act out a failure: ``missing.bin`` (404), ``page.bin`` (a login page), ``wrong.bin``
(other bytes), ``stall.bin`` (stops sending), ``cut.bin`` (cut once, then resumable), ``cut-always*``
(cut on every request), ``norange.bin`` (ignores Range).

Run as a program it serves until killed and writes an ``$I2P_MODEL_SOURCES`` file that points every
manifest entry at it (the README's first command against test doubles, see docs/portrait.md):
``python tests/download_server.py --sources /tmp/sources.json``.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.server
import threading
import time

DATA = bytes((i * 7919 + (i >> 8) * 31) % 251 for i in range(300_000))
SHA = hashlib.sha256(DATA).hexdigest()
CUT_AT = 100_000


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_once: set[str] = set()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None, send_bytes: int | None = None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if send_bytes is None else body[:send_bytes])
        self.wfile.flush()
        if send_bytes is not None:
            self.close_connection = True

    def do_GET(self):
        rng = self.headers.get("Range")
        self.server.requests.append((self.path, rng))
        name = self.path.strip("/")
        if name == "missing.bin":
            return self._send(404, b"not found")
        if name == "page.bin":
            return self._send(200, b"<html>log in first</html>", {"Content-Type": "text/html; charset=utf-8"})
        if name == "wrong.bin":
            return self._send(200, DATA[::-1])
        if name == "stall.bin":
            self.send_response(200)
            self.send_header("Content-Length", str(len(DATA)))
            self.end_headers()
            self.wfile.write(DATA[:CUT_AT])
            self.wfile.flush()
            time.sleep(2.0)
            self.close_connection = True
            return None
        if name.startswith("cut-always"):
            return self._send(200, DATA, send_bytes=CUT_AT)  # every request ends early
        if name == "cut.bin" and name not in self.server.cut_once:
            self.server.cut_once.add(name)
            return self._send(200, DATA, send_bytes=CUT_AT)  # promises all bytes, closes early
        if name == "norange.bin" or rng is None:
            return self._send(200, DATA, {"Content-Type": "application/octet-stream"})
        start = int(rng.split("=", 1)[1].split("-", 1)[0])
        return self._send(206, DATA[start:], {"Content-Range": f"bytes {start}-{len(DATA) - 1}/{len(DATA)}"})



@contextlib.contextmanager
def serving():
    """A running server for the ``with`` block (a free loopback port)."""
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def url_of(srv: _Server, name: str) -> str:
    host, port = srv.server_address
    return f"http://{host}:{port}/{name}"


def sources_for(srv: _Server, ids) -> dict:
    """An ``$I2P_MODEL_SOURCES`` mapping: each id fetched from this server as ``DATA``."""
    return {i: {"url": url_of(srv, i), "sha256": SHA, "size": len(DATA)} for i in ids}


def main() -> None:
    import argparse
    import json
    import sys
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=Path, required=True, help="write the I2P_MODEL_SOURCES file here")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from packload import pack_module

    # entries with neither sha256 nor size have no file URL (a download page): they stay "by hand"
    ids = [m.id for m in pack_module("models.manifest").MODELS if m.sha256 or m.size]
    with serving() as srv:
        args.sources.write_text(json.dumps(sources_for(srv, ids), indent=1))
        print(f"serving {len(ids)} model ids at {url_of(srv, '')}; sources in {args.sources}", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
