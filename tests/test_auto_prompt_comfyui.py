"""I2P Auto Prompt (Gemini) inside a real ComfyUI, driven through its HTTP API, against the fake Gemini
server: ComfyUI's own caching plus the node's IS_CHANGED give one API call per distinct request, a
failed call is retried on the next queue, and the key appears nowhere ComfyUI records a run.

Runs only with ``COMFYUI_PATH`` set; ComfyUI runs under ``$COMFY_PYTHON`` (or ``$COMFY_VENV/bin/python``,
see tests/integration/setup_comfyui_env.sh), else this interpreter.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fake_gemini import FakeGemini
from packload import PACK_ROOT

pytestmark = pytest.mark.comfyui
KEY = "AIzaCOMFYCHECK-0123456789abcdefghijklmno"


def _python() -> str:
    if os.environ.get("COMFY_PYTHON"):
        return os.environ["COMFY_PYTHON"]
    if os.environ.get("COMFY_VENV"):
        return str(Path(os.environ["COMFY_VENV"]) / "bin" / "python")
    return sys.executable


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    python = _python()
    probe = subprocess.run([python, "-c", "import torch, torchvision, torchaudio, aiohttp"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"{python} cannot run ComfyUI (set COMFY_PYTHON)")
    base = tmp_path_factory.mktemp("comfy")
    (base / "custom_nodes").mkdir()
    os.symlink(PACK_ROOT, base / "custom_nodes" / "ip_to_portrait")
    (base / "input").mkdir()
    face = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    Image.fromarray(face).save(base / "input" / "face.png")
    server = FakeGemini(api_key=KEY)
    port = _free_port()
    env = dict(os.environ, GEMINI_API_KEY=KEY, GOOGLE_GEMINI_BASE_URL=server.url,
               HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="127.0.0.1,localhost")
    env.pop("GOOGLE_API_KEY", None)
    log = open(base / "comfy.log", "w")
    proc = subprocess.Popen([python, str(Path(os.environ["COMFYUI_PATH"]) / "main.py"), "--cpu", "--listen",
                             "127.0.0.1", "--port", str(port), "--base-directory", str(base), "--disable-api-nodes"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(480):
            if proc.poll() is not None:
                pytest.fail(f"ComfyUI exited: {(base / 'comfy.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url + "/system_stats", timeout=2).read()
                break
            except OSError:
                time.sleep(0.25)
        yield url, server, base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        server.close()


def _call(url, path, data=None):
    req = urllib.request.Request(url + path, data=json.dumps(data).encode() if data is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _queue(url, seed):
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "face.png"}},
        "2": {"class_type": "I2PAutoPromptGemini", "inputs": {
            "face_image": ["1", 0], "style_hint": "", "model": "gemini-2.5-flash", "temperature": 0.4,
            "prompt_seed": seed, "use_fallback": True, "timeout_s": 10, "retries": 0, "cache_on_disk": True}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 3]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "i2p"}},
    }
    pid = _call(url, "/prompt", {"prompt": graph, "client_id": str(uuid.uuid4()),
                                 "extra_data": {"extra_pnginfo": {"workflow": {"nodes": []}}}})["prompt_id"]
    for _ in range(480):
        entry = _call(url, f"/history/{pid}").get(pid)
        if entry and entry.get("status", {}).get("completed") is not None:
            assert entry["status"]["status_str"] == "success", entry["status"]
            return entry["outputs"]["3"]["text"][0]
        time.sleep(0.25)
    pytest.fail("prompt did not finish")


def test_auto_prompt_in_real_comfyui(comfy):
    url, server, base = comfy
    assert "I2PAutoPromptGemini" in _call(url, "/object_info/I2PAutoPromptGemini")
    steps = [(0, "ok", 1), (0, "ok", 1),  # re-queue: no new call
             (1, "ok", 2),  # new prompt_seed: a fresh one
             (2, "503", 3), (2, "ok", 4),  # a fallback is retried on the next queue
             (2, "ok", 4)]  # ... and then stays cached
    for seed, mode, calls in steps:
        if mode == "503":
            server.reply_error(503)
        else:
            server.reply_text("a photo of a man in his 40s, short grey hair, detailed skin, natural lighting")
        status = _queue(url, seed)
        assert len(server.requests) == calls, (seed, mode, status)
        assert status.startswith("FALLBACK" if mode == "503" else "Gemini gemini-2.5-flash"), status
    recorded = [json.dumps(_call(url, "/history")), json.dumps(_call(url, "/queue")),
                (base / "comfy.log").read_text()]
    recorded += [json.dumps(Image.open(p).info) for p in (base / "output").glob("*.png")]
    recorded += [p.read_text() for p in (base / "user" / "__ip_to_portrait" / "gemini_cache").glob("*.json")]
    assert len(recorded) >= 5  # history, queue, log, at least one PNG, at least one cache file
    for blob in recorded:
        assert KEY not in blob
