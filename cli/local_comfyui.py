"""A private ComfyUI for one CLI run: started on a free loopback port, stopped afterwards.

The server is ComfyUI's own ``main.py`` run by the Python of that install (its ``venv``/``.venv`` if
there is one), so the pack must be installed in its ``custom_nodes`` like for any other use.
"""
from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from .comfy_client import ComfyClient, ComfyError, wait_until_up


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def comfyui_python(path: Path) -> str:
    """The interpreter of a ComfyUI install: its own venv if it has one, else the current one."""
    for venv in ("venv", ".venv"):
        for exe in ("bin/python", "Scripts/python.exe"):
            candidate = path / venv / exe
            if candidate.is_file():
                return str(candidate)
    return sys.executable


def detect_gpu() -> str | None:
    """A GPU ComfyUI can use, by the tools its drivers install ("nvidia (nvidia-smi)", "amd (rocm-smi)",
    "mps (Apple silicon)"), or None. No torch import: this must answer before any ComfyUI exists."""
    if shutil.which("nvidia-smi"):
        return "nvidia (nvidia-smi)"
    if shutil.which("rocm-smi"):
        return "amd (rocm-smi)"
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return "mps (Apple silicon)"
    return None


def needs_cpu_flag(extra_args: list[str]) -> bool:
    """On a Linux machine with no NVIDIA or AMD tools at all, ComfyUI must be told ``--cpu``; elsewhere
    (macOS MPS, Windows DirectML, any GPU) it picks its device itself."""
    if any(a.split("=")[0] in ("--cpu", "--directml", "--oneapi-device-selector") for a in extra_args):
        return False
    return sys.platform.startswith("linux") and detect_gpu() is None


class PrivateComfyUI:
    """``with PrivateComfyUI(path) as url:`` runs ComfyUI at ``url`` for the block."""

    def __init__(self, path: Path, python: str | None = None, extra_args: list[str] | None = None,
                 start_timeout: float = 300.0, log=print):
        self.path = Path(path).expanduser().resolve()
        if not (self.path / "main.py").is_file():
            raise ComfyError(f"--comfyui {path}: no ComfyUI there (main.py is missing)")
        self.python = python or comfyui_python(self.path)
        self.extra_args = list(extra_args or [])
        if needs_cpu_flag(self.extra_args):
            self.extra_args.append("--cpu")  # no GPU tools on this Linux machine
        if "--auto-launch" not in self.extra_args:
            self.extra_args.append("--disable-auto-launch")  # no browser tab for a scripted run
        self.start_timeout = start_timeout
        self.log = log
        self.process: subprocess.Popen | None = None
        self.log_file = None
        self.url = ""

    def __enter__(self) -> str:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        cmd = [self.python, "main.py", "--listen", "127.0.0.1", "--port", str(port), *self.extra_args]
        self.log_file = tempfile.NamedTemporaryFile(prefix="i2p-comfyui-", suffix=".log", delete=False)
        self.log(f"starting a private ComfyUI: {' '.join(cmd)} (log: {self.log_file.name})")
        self.process = subprocess.Popen(cmd, cwd=self.path, stdout=self.log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_until_up(ComfyClient(self.url), self.start_timeout, lambda: self.process.poll() is None)
        except BaseException as exc:
            tail = self._log_tail()
            self.stop()
            if isinstance(exc, ComfyError):
                raise ComfyError(f"{exc}\n--- last lines of its log ---\n{tail}") from None
            raise
        return self.url

    def __exit__(self, *exc) -> None:
        self.stop()

    def _log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(Path(self.log_file.name).read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AttributeError):
            return ""

    def stop(self) -> None:
        proc = self.process
        if proc is None:
            return
        self.process = None
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # its own session: ComfyUI and any child it started
            except (ProcessLookupError, PermissionError, AttributeError):
                proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError, AttributeError):
                    proc.kill()
                proc.wait(timeout=10)
        if self.log_file is not None:
            self.log_file.close()
