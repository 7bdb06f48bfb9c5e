"""A fake Gemini REST server on 127.0.0.1 for tests: ``POST /{v1,v1beta}/models/{model}:generateContent``
answered in the real response format (``candidates[].content.parts[].text``, ``finishReason``,
``promptFeedback.blockReason``, ``usageMetadata``) and the real error format
(``{"error": {"code", "message", "status"}}``).

Usage::

    with FakeGemini(api_key="test-key") as server:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        server.reply_text("a photo of a woman, ...")   # or reply_error(429), reply_delay(5), ...
        ...
        assert len(server.requests) == 1

Every request is recorded (path, headers, parsed JSON body, decoded inline images). :meth:`queue`
takes replies used in order before the default one (e.g. two 503s, then a success).
"""
from __future__ import annotations

import base64
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

_PATH = re.compile(r"^/(v1|v1beta|v1alpha)/models/([^/:]+):generateContent$")

STATUS_NAMES = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
                500: "INTERNAL", 503: "UNAVAILABLE"}


@dataclass
class Recorded:
    path: str
    api_version: str
    model: str
    headers: dict
    body: dict
    images: list[tuple[str, bytes]] = field(default_factory=list)  # (mime type, bytes)

    @property
    def text_parts(self) -> list[str]:
        return [p["text"] for c in self.body.get("contents", []) for p in c.get("parts", []) if "text" in p]


@dataclass
class _Raw:
    body: bytes
    content_type: str


Reply = Callable[["Recorded"], tuple[int, dict, float]]  # -> (status, json body, delay seconds)


def text_response(text: str, finish: str = "STOP", model: str = "gemini-2.5-flash") -> dict:
    return {
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": finish,
                        "index": 0}],
        "usageMetadata": {"promptTokenCount": 1290, "candidatesTokenCount": 48, "totalTokenCount": 1338},
        "modelVersion": model,
        "responseId": "fake-response",
    }


def error_response(code: int, message: str | None = None) -> dict:
    status = STATUS_NAMES.get(code, "UNKNOWN")
    return {"error": {"code": code, "message": message or f"fake {status}", "status": status}}


class FakeGemini:
    """Threaded fake server; the default reply is a short description."""

    def __init__(self, api_key: str | None = "test-key"):
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self._queue: list[Reply] = []
        self._default: Reply = self._text("a photo of a woman in her 30s, shoulder-length brown hair, "
                                          "light skin, oval face, soft smile, no glasses, soft window light, "
                                          "detailed skin, natural lighting")
        self._release = threading.Event()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server API
                owner._handle(self)

            def do_GET(self):  # noqa: N802
                owner._send(self, 404, error_response(404, "only generateContent is faked"))

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------- replies
    @staticmethod
    def _text(text: str, finish: str = "STOP") -> Reply:
        return lambda req: (200, text_response(text, finish, req.model), 0.0)

    def reply_text(self, text: str, finish: str = "STOP") -> None:
        self._default = self._text(text, finish)

    def reply_error(self, code: int, message: str | None = None) -> None:
        self._default = lambda req: (code, error_response(code, message), 0.0)

    def reply_delay(self, seconds: float) -> None:
        """Answer correctly, but only after ``seconds`` (released early by :meth:`close`)."""
        inner = self._default
        self._default = lambda req: (*inner(req)[:2], seconds)

    def reply_blocked_prompt(self, reason: str = "SAFETY") -> None:
        body = {"promptFeedback": {"blockReason": reason, "safetyRatings": [
            {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "HIGH"}]},
            "usageMetadata": {"promptTokenCount": 1290, "totalTokenCount": 1290}, "modelVersion": "gemini-2.5-flash"}
        self._default = lambda req: (200, body, 0.0)

    def reply_finish_safety(self) -> None:
        body = {"candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": [
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "MEDIUM", "blocked": True}]}],
            "usageMetadata": {"promptTokenCount": 1290, "totalTokenCount": 1290}}
        self._default = lambda req: (200, body, 0.0)

    def reply_no_candidates(self) -> None:
        self._default = lambda req: (200, {"candidates": [], "usageMetadata": {"promptTokenCount": 1290}}, 0.0)

    def reply_raw(self, status: int, body: bytes, content_type: str = "text/html") -> None:
        """A non-JSON answer, as a misconfigured proxy gives."""
        self._default = lambda req: (status, _Raw(body, content_type), 0.0)

    def queue(self, replies: list[Reply]) -> None:
        """Replies used, in order, for the next requests (then the default again)."""
        with self._lock:
            self._queue.extend(replies)

    @staticmethod
    def error(code: int, message: str | None = None) -> Reply:
        return lambda req: (code, error_response(code, message), 0.0)

    # ------------------------------------------------------------------------------------- serving
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        m = _PATH.match(h.path.split("?")[0])
        if not m:
            self._send(h, 404, error_response(404, f"unknown path {h.path}"))
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send(h, 400, error_response(400, "Invalid JSON payload received."))
            return
        req = Recorded(path=h.path, api_version=m.group(1), model=m.group(2), headers=dict(h.headers), body=body)
        for content in body.get("contents", []):
            for part in content.get("parts", []):
                inline = part.get("inlineData") or part.get("inline_data")
                if inline:
                    data = inline["data"]
                    data += "=" * (-len(data) % 4)
                    req.images.append((inline.get("mimeType") or inline.get("mime_type"),
                                       base64.urlsafe_b64decode(data.replace("+", "-").replace("/", "_"))))
        with self._lock:
            self.requests.append(req)
            reply = self._queue.pop(0) if self._queue else self._default
        key = h.headers.get("x-goog-api-key")
        if self.api_key is not None and not key:
            self._send(h, 403, error_response(403, "Method doesn't allow unregistered callers (callers without "
                                                   "established identity). Please use API Key or other form of "
                                                   "API consumer identity to call this API."))
            return
        if self.api_key is not None and key != self.api_key:
            self._send(h, 400, error_response(400, "API key not valid. Please pass a valid API key."))
            return
        status, payload, delay = reply(req)
        if delay and self._release.wait(delay):
            return  # server closing: drop the connection
        self._send(h, status, payload)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, payload) -> None:
        if isinstance(payload, _Raw):
            data, ctype = payload.body, payload.content_type
        else:
            data, ctype = json.dumps(payload).encode(), "application/json; charset=UTF-8"
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeGemini":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connections are refused (the "no network" case)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"
