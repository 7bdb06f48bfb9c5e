"""A fake ComfyUI on loopback that speaks the real protocol, for testing the CLI without a GPU.

HTTP (``/system_stats``, ``/object_info``, ``/upload/image`` multipart, ``/prompt`` with ComfyUI's
validation and 400 ``node_errors`` body, ``/queue``, ``/history/{id}``, ``/view``, ``/interrupt``) and a
websocket ``/ws?clientId=`` (RFC 6455 written with the standard library) carrying the JSON events
``status, execution_start, execution_cached, executing, progress, executed, execution_success,
execution_error, execution_interrupted`` and binary preview frames, in the order ComfyUI sends them.
Nothing is computed: nodes "run" in dependency order, output nodes return small PNGs or text.

Scenarios: ``fail_class`` (that node raises -> execution_error), ``interrupt_class`` (that node is
interrupted -> execution_interrupted), ``die_after`` (the server vanishes, sockets and all, while
running its prompt number die_after + 1), ``hold`` (nodes wait on an event, to test queue length).
Schemas are the stock ComfyUI 0.33.0 core ``/object_info`` plus the pack's own nodes.
"""
from __future__ import annotations

import base64
import email
import hashlib
import io
import json
import queue
import socket
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

CORE_OBJECT_INFO = TESTS / "data" / "comfyui-0.33.0-core-object_info.json"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def core_schemas() -> dict:
    return json.loads(CORE_OBJECT_INFO.read_text())["nodes"]


def pack_schemas() -> dict:
    from packload import load_pack, pack_module

    fmt = pack_module("cli.workflow_format")
    return {name: fmt.schema_from_class(name, cls) for name, cls in load_pack().NODE_CLASS_MAPPINGS.items()}


def all_schemas() -> dict:
    return {**core_schemas(), **pack_schemas()}


def manifest_filenames() -> set[str]:
    from packload import pack_module

    manifest = pack_module("models.manifest")
    names = set()
    for m in manifest.MODELS:
        names.add(m.filename)
        names.add(m.filename.split("/")[-1])
        names.update(m.aliases)
        if m.group:
            names.add(m.group)
    return names


def png_bytes(size: int = 32, value: int = 128) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), (value, value // 2, 255 - value)).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(size: int = 16) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), (10, 200, 30)).save(buf, format="JPEG")
    return buf.getvalue()


# ------------------------------------------------------------------------------------- websocket
class WebSocketConnection:
    """The server side of one websocket: text/binary frames out, frames in until close."""

    def __init__(self, sock: socket.socket, rfile):
        self.sock = sock
        self.rfile = rfile
        self.lock = threading.Lock()
        self.open = True

    def _send(self, opcode: int, payload: bytes) -> None:
        header = bytearray([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header.append(n)
        elif n < 1 << 16:
            header.append(126)
            header += struct.pack(">H", n)
        else:
            header.append(127)
            header += struct.pack(">Q", n)
        with self.lock:
            if not self.open:
                return
            try:
                self.sock.sendall(bytes(header) + payload)
            except OSError:
                self.open = False

    def send_json(self, event: str, data: dict) -> None:
        self._send(0x1, json.dumps({"type": event, "data": data}).encode())

    def send_bytes(self, data: bytes) -> None:
        self._send(0x2, data)

    def read_until_closed(self) -> None:
        try:
            while self.open:
                head = self.rfile.read(2)
                if len(head) < 2:
                    break
                opcode, n = head[0] & 0x0F, head[1] & 0x7F
                if n == 126:
                    n = struct.unpack(">H", self.rfile.read(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", self.rfile.read(8))[0]
                mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(n)))
                if opcode == 0x8:
                    self._send(0x8, payload[:2])
                    break
                if opcode == 0x9:
                    self._send(0xA, payload)
        except (OSError, ValueError, struct.error):
            pass
        self.open = False

    def kill(self) -> None:
        self.open = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


# ------------------------------------------------------------------------------------------ server
class FakeComfyUI:
    def __init__(self, schemas: dict | None = None, *, fail_class: str | None = None,
                 interrupt_class: str | None = None, die_after: int | None = None, steps: int = 3,
                 step_delay: float = 0.01, model_files: set[str] | None = None, port: int = 0,
                 history_delay: float = 0.2):
        self.schemas = schemas if schemas is not None else all_schemas()
        self.fail_class = fail_class
        self.interrupt_class = interrupt_class
        self.die_after = die_after
        self.steps = steps
        self.step_delay = step_delay
        self.history_delay = history_delay
        self.model_files = model_files if model_files is not None else manifest_filenames()
        self.hold = threading.Event()
        self.hold.set()  # clear() it to make nodes wait
        self.uploads: dict[str, bytes] = {}
        self.files: dict[tuple[str, str, str], bytes] = {}
        self.prompts: list[dict] = []  # every accepted prompt body, in order
        self.rejected: list[dict] = []
        self.history: dict[str, dict] = {}
        self.sockets: dict[str, WebSocketConnection] = {}
        self.pending: list[tuple] = []
        self.running: list[tuple] = []
        self.interrupts: list[dict] = []
        self.frees: list[dict] = []
        self._interrupt = threading.Event()
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._counter = 0
        self._number = 0
        self._started = 0
        self.dead = False
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._threads = [threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True),
                         threading.Thread(target=self._worker, daemon=True)]

    # lifecycle ---------------------------------------------------------------------------------
    def start(self) -> "FakeComfyUI":
        for t in self._threads:
            t.start()
        return self

    def __enter__(self) -> "FakeComfyUI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if not self.dead:
            self.kill()

    def kill(self) -> None:
        """Vanish at once: no more connections, every websocket cut."""
        self.dead = True
        self.hold.set()
        self._queue.put(None)
        threading.Thread(target=self.httpd.shutdown, daemon=True).start()
        try:
            self.httpd.socket.close()
        except OSError:
            pass
        for ws in list(self.sockets.values()):
            ws.kill()

    # events ------------------------------------------------------------------------------------
    def send(self, client_id: str | None, event: str, data: dict) -> None:
        ws = self.sockets.get(client_id or "")
        if ws is not None:
            ws.send_json(event, data)

    def queue_info(self) -> dict:
        return {"exec_info": {"queue_remaining": len(self.pending) + len(self.running)}}

    # validation --------------------------------------------------------------------------------
    def _accept_combo(self, ctype: str, name: str, value, options: list) -> bool:
        opts = {}
        spec = self.schemas.get(ctype, {}).get("input", {})
        for section in ("required", "optional"):
            if name in spec.get(section, {}):
                entry = spec[section][name]
                opts = entry[1] if len(entry) > 1 else {}
        if opts.get("image_upload"):
            return True  # LoadImage checks the file itself (custom validation below)
        return isinstance(value, str) and value.split("/")[-1] in self.model_files

    def validate(self, prompt: dict) -> tuple[dict | None, dict]:
        from packload import pack_module

        check = pack_module("cli.workflow_check")
        error, node_errors = check.check_api(prompt, self.schemas, self._accept_combo)
        if error is not None and not node_errors:
            return error, {}
        for nid, node in prompt.items():
            if node.get("class_type") == "LoadImage":
                image = node.get("inputs", {}).get("image")
                if isinstance(image, str) and image not in self.uploads:
                    node_errors.setdefault(nid, {"errors": [], "dependent_outputs": [], "class_type": "LoadImage"})
                    node_errors[nid]["errors"].append({
                        "type": "custom_validation_failed", "message": "Custom validation failed for node",
                        "details": f"image - Invalid image file: {image}", "extra_info": {}})
        if node_errors:
            error = error or {"type": "prompt_outputs_failed_validation",
                              "message": "Prompt outputs failed validation", "details": "", "extra_info": {}}
            return error, node_errors
        return None, {}

    # execution ---------------------------------------------------------------------------------
    def _order(self, prompt: dict) -> list[str]:
        order, seen = [], set()

        def visit(nid: str) -> None:
            if nid in seen:
                return
            seen.add(nid)
            for value in prompt[nid].get("inputs", {}).values():
                if isinstance(value, list) and len(value) == 2 and str(value[0]) in prompt:
                    visit(str(value[0]))
            order.append(nid)

        for nid in prompt:
            if self.schemas[prompt[nid]["class_type"]].get("output_node"):
                visit(nid)
        return order

    def _output_for(self, nid: str, node: dict) -> dict | None:
        ctype = node["class_type"]
        if ctype in ("SaveImage", "PreviewImage"):
            kind = "output" if ctype == "SaveImage" else "temp"
            prefix = node["inputs"].get("filename_prefix", "ComfyUI") if kind == "output" else "ComfyUI_temp"
            with self._lock:
                self._counter += 1
                name = f"{Path(str(prefix)).name}_{self._counter:05d}_.png"
            subfolder = str(Path(str(prefix)).parent) if "/" in str(prefix) else ""
            self.files[(kind, subfolder, name)] = png_bytes(value=self._counter % 256)
            return {"images": [{"filename": name, "subfolder": subfolder, "type": kind}]}
        if self.schemas[ctype].get("output_node"):
            return {"text": [f"fake output of {ctype} node {nid}"]}
        return None

    def _worker(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self.dead:
                return
            number, prompt_id, prompt, extra, outputs = item
            with self._lock:
                self.pending = [p for p in self.pending if p[1] != prompt_id]
                self.running = [item]
            self._started += 1
            self._execute(prompt_id, prompt, extra)
            if self.dead:
                return
            with self._lock:
                self.running = []
            self.send(extra.get("client_id"), "status", {"status": self.queue_info()})

    def _execute(self, prompt_id: str, prompt: dict, extra: dict) -> None:
        cid = extra.get("client_id")
        now = lambda: int(time.time() * 1000)  # noqa: E731
        messages = []

        def emit(event: str, data: dict) -> None:
            data = {**data, "timestamp": now()} if event.startswith("execution_") else data
            if event.startswith("execution_"):
                messages.append((event, data))
            self.send(cid, event, data)

        self._interrupt.clear()
        emit("execution_start", {"prompt_id": prompt_id})
        emit("execution_cached", {"nodes": [], "prompt_id": prompt_id})
        executed, outputs, status = [], {}, "success"
        for nid in self._order(prompt):
            self.hold.wait()
            if self.dead:
                return
            node = prompt[nid]
            ctype = node["class_type"]
            self.send(cid, "executing", {"node": nid, "display_node": nid, "prompt_id": prompt_id})
            if self.die_after is not None and self._started > self.die_after:
                self.kill()  # mid-prompt, after it started: the client sees its websocket drop
                return
            if ctype == self.interrupt_class or self._interrupt.is_set():
                emit("execution_interrupted", {"prompt_id": prompt_id, "node_id": nid, "node_type": ctype,
                                               "executed": executed})
                status = "interrupted"
                break
            if ctype == self.fail_class:
                emit("execution_error", {
                    "prompt_id": prompt_id, "node_id": nid, "node_type": ctype, "executed": executed,
                    "exception_message": f"[{ctype}] fake failure: the face was not found. Fix: use a photo with a face.",
                    "exception_type": "ValueError",
                    "traceback": ["  File \"fake.py\", line 1, in run\n", "ValueError: fake failure\n"],
                    "current_inputs": {}, "current_outputs": []})
                status = "error"
                break
            linked = any(isinstance(v, list) for v in node["inputs"].values())
            if linked and not self.schemas[ctype].get("output_node"):  # "work" with progress
                for step in range(1, self.steps + 1):
                    time.sleep(self.step_delay)
                    self.send(cid, "progress", {"value": step, "max": self.steps, "prompt_id": prompt_id, "node": nid})
                    if extra.get("preview_method") not in (None, "none", "default"):
                        ws = self.sockets.get(cid or "")
                        if ws is not None:
                            ws.send_bytes(struct.pack(">II", 1, 1) + jpeg_bytes())
            out = self._output_for(nid, node)
            if out is not None:
                outputs[nid] = out
                self.send(cid, "executed", {"node": nid, "display_node": nid, "output": out, "prompt_id": prompt_id})
            executed.append(nid)
        if status == "success":
            emit("execution_success", {"prompt_id": prompt_id})
        time.sleep(self.history_delay)  # ComfyUI records the history a moment after execution_success
        self.history[prompt_id] = {
            "prompt": [0, prompt_id, prompt, extra, list(outputs)],
            "outputs": outputs if status == "success" else {},
            "status": {"status_str": "success" if status == "success" else "error",
                       "completed": status == "success", "messages": messages},
            "meta": {},
        }
        self.send(cid, "executing", {"node": None, "prompt_id": prompt_id})

    # HTTP --------------------------------------------------------------------------------------
    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet test output
                pass

            def _json(self, data, status: int = 200) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/ws":
                    return self._websocket(query.get("clientId") or uuid.uuid4().hex)
                if url.path == "/system_stats":
                    return self._json({"system": {"os": "fake", "comfyui_version": "0.33.0-fake",
                                                  "python_version": sys.version, "embedded_python": False},
                                       "devices": []})
                if url.path == "/object_info":
                    return self._json(fake.schemas)
                if url.path == "/queue":
                    with fake._lock:
                        return self._json({"queue_running": [list(p[:2]) for p in fake.running],
                                           "queue_pending": [list(p[:2]) for p in fake.pending]})
                if url.path.startswith("/history/"):
                    pid = url.path.split("/", 2)[2]
                    return self._json({pid: fake.history[pid]} if pid in fake.history else {})
                if url.path == "/view":
                    key = (query.get("type", "output"), query.get("subfolder", ""), query.get("filename", ""))
                    data = fake.files.get(key)
                    if data is None:
                        self.send_response(404)
                        self.end_headers()
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(404)
                self.end_headers()

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/upload/image":
                    return self._upload()
                body = self._body()
                try:
                    data = json.loads(body or b"{}")
                except ValueError:
                    return self._json({"error": "bad json"}, 400)
                if url.path == "/prompt":
                    return self._prompt(data)
                if url.path == "/interrupt":
                    fake.interrupts.append(data)
                    running = [p[1] for p in fake.running]
                    if not data.get("prompt_id") or data["prompt_id"] in running:
                        fake._interrupt.set()
                    self.send_response(200)
                    self.end_headers()
                    return
                if url.path == "/free":  # ComfyUI sets flags its prompt worker acts on; nothing to free here
                    fake.frees.append(data)
                    self.send_response(200)
                    self.end_headers()
                    return
                if url.path == "/queue":
                    with fake._lock:
                        fake.pending = [p for p in fake.pending if p[1] not in data.get("delete", [])]
                    self.send_response(200)
                    self.end_headers()
                    return
                self.send_response(404)
                self.end_headers()

            def _prompt(self, data: dict) -> None:
                if "prompt" not in data:
                    return self._json({"error": {"type": "no_prompt", "message": "No prompt provided",
                                                 "details": "No prompt provided", "extra_info": {}},
                                       "node_errors": {}}, 400)
                prompt = data["prompt"]
                error, node_errors = fake.validate(prompt)
                if error is not None:
                    fake.rejected.append(data)
                    return self._json({"error": error, "node_errors": node_errors}, 400)
                prompt_id = str(uuid.uuid4())
                extra = dict(data.get("extra_data") or {})
                if "client_id" in data:
                    extra["client_id"] = data["client_id"]
                with fake._lock:
                    fake._number += 1
                    item = (fake._number, prompt_id, prompt, extra, [])
                    fake.pending.append(item)
                fake.prompts.append(data)
                fake._queue.put(item)
                self._json({"prompt_id": prompt_id, "number": item[0], "node_errors": {}})

            def _upload(self) -> None:
                body = self._body()
                head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
                msg = email.message_from_bytes(head + body)
                fields, image, filename = {}, None, None
                for part in msg.get_payload():
                    name = part.get_param("name", header="content-disposition")
                    if part.get_filename():
                        image, filename = part.get_payload(decode=True), part.get_filename()
                    else:
                        fields[name] = part.get_payload(decode=True).decode()
                if image is None or not filename:
                    self.send_response(400)
                    self.end_headers()
                    return
                subfolder = fields.get("subfolder", "")
                stem, dot, ext = filename.rpartition(".")
                final, i = filename, 1
                while True:
                    key = f"{subfolder}/{final}" if subfolder else final
                    if key not in fake.uploads or fake.uploads[key] == image:
                        break
                    final = f"{stem} ({i}){dot}{ext}"
                    i += 1
                fake.uploads[key] = image
                self._json({"name": final, "subfolder": subfolder, "type": fields.get("type", "input")})

            def _websocket(self, client_id: str) -> None:
                key = self.headers.get("Sec-WebSocket-Key", "")
                if self.headers.get("Upgrade", "").lower() != "websocket" or not key:
                    self.send_response(400)
                    self.end_headers()
                    return
                accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
                # written by hand: BaseHTTPRequestHandler would answer "HTTP/1.0", which is no upgrade
                self.wfile.write((f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                  f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
                self.wfile.flush()
                ws = WebSocketConnection(self.connection, self.rfile)
                fake.sockets[client_id] = ws
                ws.send_json("status", {"status": fake.queue_info(), "sid": client_id})
                ws.read_until_closed()
                if fake.sockets.get(client_id) is ws:
                    del fake.sockets[client_id]
                self.close_connection = True

        return Handler


def main(argv: list[str] | None = None) -> None:
    """``python fake_comfyui.py --listen 127.0.0.1 --port N [...]``: the fake as a process, the way
    the CLI starts a private ComfyUI (ComfyUI's other flags are accepted and ignored)."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    args, _ = parser.parse_known_args(argv)
    server = FakeComfyUI(port=args.port).start()
    print(f"fake ComfyUI at {server.url}", flush=True)
    try:
        while not server.dead:
            time.sleep(0.2)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
