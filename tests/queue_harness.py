"""A real Redis server and real queue workers for the queue tests and bench/batch_queue.py.

``RedisServer`` runs the distribution's ``redis-server`` on a free loopback port with its own folder
(append-only file on, fsync on every write, so a restart keeps every acknowledged write). ``Worker``
runs ``worker`` of this checkout in a child process (tests/pack_cli.py), bound to one ComfyUI server,
so that killing it with SIGKILL is a real crash.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def wait_for(check, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"gave up after {timeout:g} s waiting for {what}")


class RedisServer:
    def __init__(self, folder: Path, persistent: bool = True):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.persistent = persistent
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                "--save", "", "--protected-mode", "yes", "--daemonize", "no", "--logfile", "redis.log"]
        args += ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for(self._answers, 20, f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"redis-server exited ({self.proc.returncode}): {log}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: Redis shuts down cleanly (what a service restart does)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, down_for: float = 1.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Worker:
    """``worker --server URL --broker URL`` of this checkout, in a child process with its own log."""

    def __init__(self, server: str, broker: str, log_dir: Path, name: str, visibility: float = 4.0):
        self.server, self.broker, self.name, self.visibility = server, broker, name, visibility
        self.log_path = Path(log_dir) / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> "Worker":
        env = {**os.environ, "I2P_QUIET": "1", "PYTHONUNBUFFERED": "1"}
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(TESTS / "pack_cli.py"), "worker", "--server", self.server, "--broker", self.broker,
             "--name", f"{self.name}@test", "--visibility-timeout", str(self.visibility), "--loglevel", "INFO"],
            stdout=self.log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            return " ready." in self.log()
        wait_for(ready, timeout, f"worker {self.name} to be ready", every=0.2)

    def kill(self) -> None:
        """SIGKILL: the worker dies where it stands, mid-job or not."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # Celery's cold shutdown: no waiting for a job
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log_file", None):
            self.log_file.close()
