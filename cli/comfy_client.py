"""A client for ComfyUI's HTTP queue API and its ``/ws`` event stream.

Speaks the protocol of a stock ComfyUI server (0.33): ``POST /upload/image`` (multipart), ``POST
/prompt`` (400 with ``node_errors`` when validation fails), ``/ws?clientId=`` JSON events plus binary
preview frames, ``GET /history/{id}``, ``GET /view``, ``GET /queue``, ``POST /interrupt``.

Every network failure becomes :class:`ServerLost`, so a batch can move the job to another server
instead of dying with a traceback from requests or websocket-client.
"""
from __future__ import annotations

import json
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import requests

#: Binary websocket frames (ComfyUI's protocol.BinaryEventTypes).
PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4


class ComfyError(Exception):
    """Base of everything this client raises on purpose."""


class ServerLost(ComfyError):
    """The server stopped answering (refused, reset, timed out, websocket gone)."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"ComfyUI at {url} is not answering: {reason}")
        self.url = url
        self.reason = reason


class PromptRejected(ComfyError):
    """``POST /prompt`` answered 400: the workflow failed validation."""

    def __init__(self, error: dict, node_errors: dict):
        self.error = error or {}
        self.node_errors = node_errors or {}
        super().__init__(self.error.get("message") or "the prompt was rejected")


@dataclass
class Preview:
    """One preview frame sent while a node runs."""

    mime: str
    data: bytes
    node: str | None = None

    @property
    def suffix(self) -> str:
        return ".png" if self.mime == "image/png" else ".jpg"


@dataclass
class Outcome:
    """How a prompt ended, from its websocket events."""

    status: str  # "success" | "error" | "interrupted"
    data: dict = field(default_factory=dict)  # the execution_error / execution_interrupted payload


def parse_preview(frame: bytes) -> Preview | None:
    """Decode a binary websocket frame; None for event types that carry no picture."""
    if len(frame) < 8:
        return None
    (event,) = struct.unpack(">I", frame[:4])
    if event == PREVIEW_IMAGE:
        (kind,) = struct.unpack(">I", frame[4:8])
        return Preview("image/png" if kind == 2 else "image/jpeg", bytes(frame[8:]))
    if event == PREVIEW_IMAGE_WITH_METADATA:
        (size,) = struct.unpack(">I", frame[4:8])
        try:
            meta = json.loads(frame[8:8 + size].decode("utf-8"))
        except ValueError:
            return None
        return Preview(meta.get("image_type", "image/jpeg"), bytes(frame[8 + size:]), meta.get("node_id"))
    return None


def normalize_url(url: str) -> str:
    if "://" not in url:
        url = "http://" + url
    return url.rstrip("/")


class ComfyClient:
    """One ComfyUI server; batch jobs share it from several threads (one requests.Session each)."""

    def __init__(self, url: str, timeout: float = 30.0):
        self.url = normalize_url(url)
        self.timeout = timeout
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            if urlsplit(self.url).hostname in ("127.0.0.1", "localhost", "::1"):
                session.trust_env = False  # a proxy setting must not redirect loopback traffic
        return session

    def __repr__(self) -> str:
        return f"ComfyClient({self.url})"

    # ------------------------------------------------------------------------------------------ HTTP
    def _request(self, method: str, path: str, timeout: float | None = None, **kwargs) -> requests.Response:
        try:
            return self.session.request(method, self.url + path, timeout=timeout or self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise ServerLost(self.url, f"{type(exc).__name__}: {exc}") from None

    def _json(self, method: str, path: str, **kwargs) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code >= 500:
            raise ServerLost(self.url, f"{method} {path} answered {response.status_code}")
        if response.status_code != 200:
            raise ComfyError(f"{method} {self.url}{path} answered {response.status_code}: {response.text[:500]}")
        try:
            return response.json()
        except ValueError:
            raise ComfyError(f"{method} {self.url}{path} did not answer JSON: {response.text[:200]}") from None

    def alive(self, timeout: float = 3.0) -> bool:
        try:
            return self._request("GET", "/system_stats", timeout=timeout).status_code == 200
        except ServerLost:
            return False

    def system_stats(self) -> dict:
        return self._json("GET", "/system_stats")

    def get_json(self, path: str, timeout: float | None = None) -> Any:
        """Any JSON ``GET`` of the server's API (``/models``, ``/object_info/<node>``, ...)."""
        return self._json("GET", path, timeout=timeout)

    def free(self, unload_models: bool = True, free_memory: bool = False) -> None:
        """``POST /free``: unload every model (and with ``free_memory`` drop the cached node outputs)
        after the running prompt; what the editor's "Unload models" buttons send."""
        response = self._request("POST", "/free", json={"unload_models": unload_models, "free_memory": free_memory})
        if response.status_code != 200:
            raise ComfyError(f"POST /free answered {response.status_code}: {response.text[:200]}")

    def object_info(self) -> dict:
        return self._json("GET", "/object_info", timeout=max(self.timeout, 120))

    def queue_length(self) -> int:
        """Prompts running plus waiting, for every client of this server."""
        q = self._json("GET", "/queue", timeout=5)
        return len(q.get("queue_running", [])) + len(q.get("queue_pending", []))

    def upload_image(self, path: Path, subfolder: str = "i2p_cli") -> str:
        """Upload a file to ComfyUI's input folder; returns the value a LoadImage node takes.

        ComfyUI renames a file whose name is taken by different content ("x (1).png") and reuses an
        identical one, so the answer's name is what counts.
        """
        path = Path(path)
        with open(path, "rb") as fh:
            files = {"image": (path.name, fh, "application/octet-stream")}
            response = self._request("POST", "/upload/image", files=files,
                                     data={"type": "input", "subfolder": subfolder})
        if response.status_code != 200:
            raise ComfyError(f"uploading {path} to {self.url} failed ({response.status_code}): {response.text[:300]}")
        info = response.json()
        return f"{info['subfolder']}/{info['name']}" if info.get("subfolder") else info["name"]

    def submit(self, prompt: dict, client_id: str, extra_data: dict | None = None,
               on_event: Callable[[str, dict], None] | None = None) -> str:
        """Queue an API-format prompt; raises PromptRejected with ComfyUI's node_errors on a 400.

        A 200 answer may still carry node_errors (outputs ComfyUI dropped because their branch
        failed validation): they reach ``on_event`` as a ``node_errors`` event."""
        body = {"prompt": prompt, "client_id": client_id}
        if extra_data:
            body["extra_data"] = extra_data
        response = self._request("POST", "/prompt", json=body)
        if response.status_code == 400:
            try:
                info = response.json()
            except ValueError:
                info = {"error": {"message": response.text[:500]}}
            raise PromptRejected(info.get("error", {}), info.get("node_errors", {}))
        if response.status_code >= 500:
            raise ServerLost(self.url, f"POST /prompt answered {response.status_code}")
        if response.status_code != 200:
            raise ComfyError(f"POST /prompt answered {response.status_code}: {response.text[:500]}")
        info = response.json()
        if info.get("node_errors") and on_event is not None:
            on_event("node_errors", info["node_errors"])
        return info["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        """The history entry of a finished prompt, or None while it is queued or running."""
        return self._json("GET", f"/history/{prompt_id}").get(prompt_id)

    def wait_history(self, prompt_id: str, timeout: float = 60.0) -> dict:
        """The history entry, waiting for it: ComfyUI sends ``execution_success`` a moment before it
        records the prompt in its history."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self.history(prompt_id)
            if entry is not None:
                return entry
            if time.monotonic() > deadline:
                raise ComfyError(f"prompt {prompt_id} finished but never appeared in /history")
            time.sleep(0.1)

    def view(self, filename: str, subfolder: str = "", folder_type: str = "output") -> bytes:
        response = self._request("GET", "/view", params={"filename": filename, "subfolder": subfolder,
                                                         "type": folder_type}, timeout=max(self.timeout, 120))
        if response.status_code != 200:
            raise ComfyError(f"downloading {subfolder}/{filename} ({folder_type}) failed: {response.status_code}")
        return response.content

    def interrupt(self, prompt_id: str | None = None) -> None:
        self._request("POST", "/interrupt", json={"prompt_id": prompt_id} if prompt_id else {}, timeout=5)

    def delete_queued(self, prompt_ids: list[str]) -> None:
        self._request("POST", "/queue", json={"delete": prompt_ids}, timeout=5)

    # ------------------------------------------------------------------------------------- websocket
    def ws_url(self, client_id: str) -> str:
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{parts.path}/ws?clientId={client_id}"

    def connect_events(self, client_id: str) -> "EventStream":
        return EventStream(self, client_id)

    def run(self, prompt: dict, on_event: Callable[[str, dict], None] | None = None,
            on_preview: Callable[[Preview], None] | None = None, extra_data: dict | None = None,
            idle_check: float = 2.0, on_submitted: Callable[[str], None] | None = None,
            cancel: threading.Event | None = None) -> tuple[str, Outcome]:
        """Submit a prompt and follow it to its end: (prompt_id, Outcome). ``cancel`` set from
        another thread ends the wait with an "interrupted" outcome (the caller interrupts the server)."""
        client_id = uuid.uuid4().hex
        with self.connect_events(client_id) as events:  # connect first: no early event is missed
            prompt_id = self.submit(prompt, client_id, extra_data, on_event)
            if on_submitted is not None:
                on_submitted(prompt_id)
            return prompt_id, events.follow(prompt_id, on_event, on_preview, idle_check, cancel)


class EventStream:
    """The ``/ws`` stream of one client id."""

    def __init__(self, client: ComfyClient, client_id: str):
        self.client = client
        self.client_id = client_id
        self.ws = None

    def __enter__(self) -> "EventStream":
        self._connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _connect(self) -> None:
        import websocket

        try:
            self.ws = websocket.create_connection(self.client.ws_url(self.client_id), timeout=10,
                                                  enable_multithread=True)
        except (OSError, websocket.WebSocketException) as exc:
            raise ServerLost(self.client.url, f"websocket: {exc}") from None

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:  # closing a dead socket: nothing left to do
                pass
            self.ws = None

    def _finished_in_history(self, prompt_id: str) -> Outcome | None:
        entry = self.client.history(prompt_id)
        if entry is None:
            return None
        status = entry.get("status") or {}
        for event, data in status.get("messages", []):
            if event in ("execution_error", "execution_interrupted"):
                return Outcome("error" if event == "execution_error" else "interrupted", data)
        return Outcome("success" if status.get("completed", True) else "error", {})

    def follow(self, prompt_id: str, on_event=None, on_preview=None, idle_check: float = 2.0,
               cancel: threading.Event | None = None) -> Outcome:
        """Read events until the prompt ends. Silence longer than ``idle_check`` seconds (a long
        sampling step) triggers a look at /history, which also notices a server that went away."""
        import websocket

        self.ws.settimeout(idle_check)
        succeeded = False
        while True:
            if cancel is not None and cancel.is_set():
                return Outcome("interrupted", {"prompt_id": prompt_id, "node_type": "cancelled by the user"})
            try:
                opcode, payload = self.ws.recv_data()
            except websocket.WebSocketTimeoutException:
                done = self._finished_in_history(prompt_id)  # raises ServerLost when the server is gone
                if done is not None:
                    return done
                continue
            except (OSError, websocket.WebSocketException) as exc:
                # the socket broke: the server died, or only the socket did (then reconnect)
                if not self.client.alive():
                    raise ServerLost(self.client.url, f"websocket closed ({exc})") from None
                done = self._finished_in_history(prompt_id)
                if done is not None:
                    return done
                self.close()
                self._connect()
                self.ws.settimeout(idle_check)
                continue
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                if not self.client.alive():
                    raise ServerLost(self.client.url, "websocket closed by the server")
                self.close()
                self._connect()
                self.ws.settimeout(idle_check)
                continue
            if opcode == websocket.ABNF.OPCODE_BINARY:
                preview = parse_preview(payload)
                if preview is not None and on_preview is not None:
                    on_preview(preview)
                continue
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue
            try:
                message = json.loads(payload.decode("utf-8"))
            except ValueError:
                continue
            event, data = message.get("type"), message.get("data") or {}
            if data.get("prompt_id") not in (None, prompt_id):
                continue  # another prompt of this server
            if on_event is not None:
                on_event(event, data)
            if event == "execution_error":
                return Outcome("error", data)
            if event == "execution_interrupted":
                return Outcome("interrupted", data)
            if event == "execution_success":
                succeeded = True  # the history entry follows; "executing" with node None ends it
                continue
            if event == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                if succeeded:
                    return Outcome("success", {"prompt_id": prompt_id})
                return self._finished_in_history(prompt_id) or Outcome("success", data)


def wait_until_up(client: ComfyClient, seconds: float, still_starting: Callable[[], bool] | None = None) -> None:
    """Poll /system_stats until the server answers; ``still_starting`` returning False aborts."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.alive(timeout=2):
            return
        if still_starting is not None and not still_starting():
            raise ComfyError(f"ComfyUI at {client.url} exited while starting")
        time.sleep(0.5)
    raise ComfyError(f"ComfyUI at {client.url} did not answer within {seconds:.0f} s")
