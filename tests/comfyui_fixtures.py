"""A real ComfyUI server with this pack installed, for tests marked ``comfyui`` (a pytest plugin).

The session fixture ``comfyui_server`` starts ComfyUI from ``$COMFYUI_PATH`` with the interpreter
running the tests (``sys.executable``: run the tier from the venv that setup_comfyui_env.sh made) on a
free loopback port, in a throwaway base directory:

    <base>/custom_nodes/ip_to_portrait -> the pack root (a symlink: the tests run the working tree)
    <base>/models/<folder>/<file>      -> symlinks into the cache of ``full`` test models
    <base>/extra_models/               -> a second model tree named by an extra_model_paths.yaml

``full`` test models are built once into ``$I2P_TEST_MODELS_CACHE`` (default
``~/.cache/ip_to_portrait/test-models/full``), a ComfyUI-style models tree, and only linked from
there: the SDXL checkpoint alone is 6.9 GB. ``$I2P_COMFY_TEST_MODELS`` (comma-separated manifest ids,
or ``none``) limits which are built; by default every entry whose builder supports ``full``.
``$I2P_COMFY_EXTRA_ARGS`` adds flags to ComfyUI's command line (e.g. ``--bf16-unet``).

``ComfyServer`` has the helpers other integration tests use: ``object_info``, ``queue_prompt``,
``run_prompt`` (queues a prompt and collects its websocket events until it is done), ``history``,
``view``, ``upload_image``, ``output_images``, ``log_text``, ``free_memory``, ``rss_bytes``. Every
HTTP and websocket call goes through the CLI's :class:`cli.comfy_client.ComfyClient`: the tier also
tests the client users run.
"""
from __future__ import annotations

import atexit
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pytest

from packload import pack_module

comfy_client = pack_module("cli.comfy_client")  # the pack's one ComfyUI HTTP/websocket client
PromptRejected = comfy_client.PromptRejected  # POST /prompt answered 400: ``error``, ``node_errors``

PACK_ROOT = Path(__file__).resolve().parent.parent
PACK_DIR_NAME = "ip_to_portrait"
CACHE_ENV = "I2P_TEST_MODELS_CACHE"
MODELS_ENV = "I2P_COMFY_TEST_MODELS"
EXTRA_ARGS_ENV = "I2P_COMFY_EXTRA_ARGS"  # more main.py flags, e.g. "--bf16-unet" (less memory)
START_TIMEOUT_S = float(os.environ.get("I2P_COMFY_START_TIMEOUT", "300"))


# ----------------------------------------------------------------------------------- pure helpers
def full_models_cache() -> Path:
    """Where ``full`` test models are built once and kept (outside any temporary directory)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "ip_to_portrait" / "test-models" / "full"


def wanted_model_ids(all_ids: Iterable[str], spec: str | None) -> list[str]:
    """Manifest ids selected by ``$I2P_COMFY_TEST_MODELS`` (None/empty = all, ``none`` = none)."""
    all_ids = list(all_ids)
    if spec is None or not spec.strip():
        return all_ids
    if spec.strip().lower() == "none":
        return []
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [w for w in wanted if w not in all_ids]
    if unknown:
        raise ValueError(f"{MODELS_ENV} names unknown manifest ids {unknown}; known: {all_ids}")
    return wanted


def build_models(cache: Path, ids: Iterable[str], profile: str = "full") -> tuple[dict[str, Path], dict[str, str]]:
    """Build (or find already built) each id under ``cache``; returns (built paths, skipped: reason).

    An entry is skipped, not fatal, when no builder exists or its builder cannot make that profile:
    each stage's owner adds ``full`` support to its own builder, and the server starts with what
    there is. The reasons go into the server log header so a missing model is never a mystery.
    """
    import fcntl

    import model_factory

    built: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    Path(cache).mkdir(parents=True, exist_ok=True)
    with open(Path(cache) / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions sharing one cache must not write one file twice
        for model_id in ids:
            try:
                built[model_id] = model_factory.build(model_id, cache, profile)
            except Exception as exc:  # noqa: BLE001 - recorded and reported, see docstring
                msg = str(exc).strip()
                skipped[model_id] = f"{type(exc).__name__}: {msg.splitlines()[-1] if msg else ''}"
    return built, skipped


def build_models_in_subprocess(cache: Path, ids: Iterable[str], profile: str = "full",
                               python: str = sys.executable) -> tuple[dict[str, Path], dict[str, str]]:
    """:func:`build_models` in a child process, so the memory that full-size builds take is returned
    to the system before a multi-GB ComfyUI server starts next to the test process."""
    ids = list(ids)
    if not ids:
        return {}, {}
    cmd = [python, str(Path(__file__).resolve()), "build", str(cache), profile, *ids]
    proc = subprocess.run(cmd, cwd=Path(__file__).resolve().parent, capture_output=True, text=True,
                          env=_server_env())
    if proc.returncode != 0:
        raise RuntimeError(f"building test models failed:\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {k: Path(v) for k, v in out["built"].items()}, out["skipped"]


def link_models(files: Iterable[Path], cache: Path, models_dir: Path) -> list[Path]:
    """Symlink each file of the cache tree to the same relative place under ``models_dir``."""
    links = []
    for src in files:
        rel = Path(src).relative_to(cache)
        link = models_dir / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(src).resolve())
        links.append(link)
    return links


def prepare_base_dir(base: Path, pack_root: Path = PACK_ROOT) -> dict[str, Path]:
    """Lay out a ComfyUI base directory with the pack linked into custom_nodes and an extra model tree
    named by extra_model_paths.yaml (paths the pack must keep when it registers its folders)."""
    base.mkdir(parents=True, exist_ok=True)
    custom = base / "custom_nodes"
    custom.mkdir(exist_ok=True)
    link = custom / PACK_DIR_NAME
    if not link.exists():
        link.symlink_to(pack_root, target_is_directory=True)
    models = base / "models"
    models.mkdir(exist_ok=True)
    extra = base / "extra_models"
    for folder in ("ipadapter", "insightface", "facerestore_models"):
        (extra / folder).mkdir(parents=True, exist_ok=True)
    yaml_path = base / "extra_model_paths.yaml"
    yaml_path.write_text(
        "i2p_test_extra:\n"
        f"    base_path: {extra}\n"
        "    ipadapter: ipadapter\n"
        "    insightface: insightface\n"
        "    facerestore_models: facerestore_models\n"
    )
    return {"base": base, "custom_nodes": custom, "pack_link": link, "models": models, "extra_models": extra,
            "extra_model_paths": yaml_path}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(comfy_path: Path, base: Path, port: int, python: str = sys.executable,
                   extra_args: Iterable[str] = ()) -> list[str]:
    return [
        python, str(Path(comfy_path) / "main.py"), "--cpu", "--listen", "127.0.0.1", "--port", str(port),
        "--base-directory", str(base), "--disable-api-nodes", "--preview-method", "latent2rgb",
        "--extra-model-paths-config", str(base / "extra_model_paths.yaml"),
        # keep ComfyUI's database out of its checkout (and apart from any other running instance)
        "--database-url", f"sqlite:///{base / 'comfyui.db'}",
        *extra_args,
    ]


def pack_import_failures(log: str, pack_dir_name: str = PACK_DIR_NAME) -> list[str]:
    """Parts of a ComfyUI log that say this pack failed to import: the ``IMPORT FAILED`` line of the
    import-times table, and any traceback that runs through the pack's files or names the pack in its
    last line or the line right after it (ComfyUI's "Cannot import ... module for custom nodes")."""
    bad = []
    lines = log.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "IMPORT FAILED" in line and pack_dir_name in line:
            bad.append(line)
        if line.startswith("Traceback"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith((" ", "\t")) or not lines[j].strip()):
                j += 1
            block = lines[i:j + 2]  # frames, the exception line, and the line after it
            if any(pack_dir_name in b or str(PACK_ROOT) in b for b in block):
                bad.append("\n".join(block))
            i = j
        i += 1
    return bad


# ------------------------------------------------------------------------------------------- server
@dataclass
class PromptRun:
    """One executed prompt: its id, websocket events (in order), preview frames and history entry."""

    prompt_id: str
    events: list[dict] = field(default_factory=list)
    previews: list = field(default_factory=list)  # cli.comfy_client.Preview frames, in order
    history: dict = field(default_factory=dict)
    seconds: float = 0.0

    def of_type(self, kind: str) -> list[dict]:
        return [e["data"] for e in self.events if e.get("type") == kind]

    @property
    def succeeded(self) -> bool:
        return bool(self.of_type("execution_success")) and not self.of_type("execution_error")

    @property
    def error(self) -> dict | None:
        errs = self.of_type("execution_error")
        return errs[0] if errs else None


class ComfyServer:
    """A running ComfyUI process and the HTTP/websocket calls tests make against it."""

    def __init__(self, comfy_path: Path, base: Path, python: str = sys.executable,
                 extra_args: Iterable[str] = (), env: dict | None = None):
        self.comfy_path = Path(comfy_path)
        self.base = Path(base)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = comfy_client.ComfyClient(self.url, timeout=60)
        self.log_path = self.base / "comfyui.log"
        self.command = server_command(self.comfy_path, self.base, self.port, python, extra_args)
        self.env = env if env is not None else _server_env()
        self.process: subprocess.Popen | None = None
        self.start_seconds: float | None = None
        self.peak_rss_bytes: int | None = None
        self.model_report: str = ""
        self.built_models: dict[str, Path] = {}  # manifest id -> file in the full-model cache
        self.skipped_models: dict[str, str] = {}  # manifest id -> why it is not there
        self.dirs: dict[str, Path] = {}
        self.figures: list[str] = []  # measured lines, printed when the session ends

    # -- lifecycle
    def start(self, timeout: float = START_TIMEOUT_S) -> "ComfyServer":
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=self.comfy_path, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=self.env, start_new_session=True,
            )
        atexit.register(self.stop)
        while time.monotonic() - t0 < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode} while starting:\n{self.log_tail()}")
            if self.client.alive(timeout=5):
                self.start_seconds = time.monotonic() - t0
                return self
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def rss_bytes(self) -> tuple[int, int] | None:
        """(current, peak) resident memory of the server process, from /proc (Linux)."""
        if self.process is None or self.process.poll() is not None:
            return None
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        vals = {}
        for line in status.splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, val = line.split(":", 1)
                vals[key] = int(val.split()[0]) * 1024
        return vals.get("VmRSS", 0), vals.get("VmHWM", 0)

    def stop(self, timeout: float = 30) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        rss = self.rss_bytes()
        if rss:
            self.peak_rss_bytes = max(self.peak_rss_bytes or 0, rss[1])
        try:
            os.killpg(proc.pid, signal.SIGINT)  # the process group this fixture started
            proc.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=timeout)

    # -- log
    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def reset_peak_rss(self) -> None:
        """Start a new peak-RSS measurement (Linux: ``5`` to /proc/PID/clear_refs resets VmHWM)."""
        rss = self.rss_bytes()
        if rss:
            self.peak_rss_bytes = max(self.peak_rss_bytes or 0, rss[1])
            Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def record_figure(self, line: str) -> None:
        """A measured figure: into the server log now, and printed when the session ends."""
        self.figures.append(line)
        with open(self.log_path, "a") as f:
            f.write(f"[i2p test] {line}\n")

    # -- HTTP, through the CLI's client
    def get_json(self, path: str, timeout: float = 60) -> Any:
        return self.client.get_json(path, timeout=timeout)

    def object_info(self, node_class: str | None = None) -> dict:
        return self.get_json("/object_info" + (f"/{urllib.parse.quote(node_class)}" if node_class else ""), 120)

    def models(self, folder: str) -> list[str]:
        """``GET /models/<folder>``: the file names ComfyUI offers for that folder."""
        return self.get_json(f"/models/{urllib.parse.quote(folder)}")

    def post_prompt(self, prompt: dict, client_id: str | None = None, extra_data: dict | None = None) -> tuple[int, dict]:
        """``POST /prompt`` as (status, body), a 400 included: for tests of validation errors."""
        try:
            return 200, {"prompt_id": self.queue_prompt(prompt, client_id, extra_data)}
        except PromptRejected as exc:
            return 400, {"error": exc.error, "node_errors": exc.node_errors}

    def queue_prompt(self, prompt: dict, client_id: str | None = None, extra_data: dict | None = None) -> str:
        return self.client.submit(prompt, client_id or uuid.uuid4().hex, extra_data)

    def history(self, prompt_id: str) -> dict:
        return self.client.history(prompt_id) or {}

    def wait_for_history(self, prompt_id: str, timeout: float = 600) -> dict:
        return self.client.wait_history(prompt_id, timeout=timeout)

    def run_prompt(self, prompt: dict, timeout: float = 600, extra_data: dict | None = None) -> PromptRun:
        """Queue ``prompt`` and collect its websocket events until ComfyUI reports it finished (or
        failed, or was interrupted); then read its history entry."""
        run = PromptRun("")
        cancel = threading.Event()
        timer = threading.Timer(timeout, cancel.set)
        timer.start()
        t0 = time.monotonic()
        try:
            run.prompt_id, _ = self.client.run(
                prompt, on_event=lambda kind, data: run.events.append({"type": kind, "data": data}),
                on_preview=run.previews.append, extra_data=extra_data, cancel=cancel)
        finally:
            timer.cancel()
        if cancel.is_set():
            raise TimeoutError(f"prompt {run.prompt_id} not done within {timeout:.0f} s:\n{self.log_tail()}")
        run.seconds = time.monotonic() - t0
        run.history = self.wait_for_history(run.prompt_id, timeout=60)
        return run

    def output_images(self, history: dict) -> list[dict]:
        """Every ``{"filename", "subfolder", "type"}`` the prompt's output nodes reported."""
        out = []
        for node_out in history.get("outputs", {}).values():
            out += node_out.get("images", [])
        return out

    def view(self, filename: str, subfolder: str = "", type: str = "output") -> bytes:
        return self.client.view(filename, subfolder, type)

    def upload_image(self, png_bytes: bytes, name: str) -> str:
        """Upload picture bytes to ComfyUI's input folder; returns the name a LoadImage node takes."""
        folder = self.base / "uploads"
        folder.mkdir(exist_ok=True)
        (folder / name).write_bytes(png_bytes)
        return self.client.upload_image(folder / name, subfolder="")

    def free_memory(self, unload_models: bool = True, free_memory: bool = True) -> None:
        """``POST /free``: ComfyUI acts on it between prompts, in its prompt worker."""
        self.client.free(unload_models=unload_models, free_memory=free_memory)

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"ComfyUI died (exit {self.process.returncode}):\n{self.log_tail()}")


def _server_env() -> dict:
    env = dict(os.environ)
    env.pop("I2P_MODELS_DIR", None)  # inside ComfyUI the pack must use ComfyUI's folders only
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# ------------------------------------------------------------------------------------------ fixture
@pytest.fixture(scope="session")
def comfyui_server(tmp_path_factory):
    """A ComfyUI with this pack and the ``full`` test models, shared by the whole session."""
    comfy_path = os.environ.get("COMFYUI_PATH")
    if not comfy_path or not (Path(comfy_path) / "main.py").is_file():
        pytest.skip("COMFYUI_PATH does not name a ComfyUI checkout")
    import model_factory

    base = tmp_path_factory.mktemp("comfyui_base")
    dirs = prepare_base_dir(base)
    cache = full_models_cache()
    cache.mkdir(parents=True, exist_ok=True)
    ids = wanted_model_ids([m.id for m in model_factory.manifest().MODELS], os.environ.get(MODELS_ENV))
    t0 = time.monotonic()
    built, skipped = build_models_in_subprocess(cache, ids)
    link_models(built.values(), cache, dirs["models"])
    report = [f"[i2p test] full test models from {cache} ({time.monotonic() - t0:.0f} s): {len(built)} linked"]
    report += [f"[i2p test]   skipped {k}: {v}" for k, v in skipped.items()]
    server = ComfyServer(Path(comfy_path), base, extra_args=shlex.split(os.environ.get(EXTRA_ARGS_ENV, "")))
    server.model_report = "\n".join(report)
    server.log_path.write_text(server.model_report + "\n")
    server.built_models = built
    server.skipped_models = skipped
    server.dirs = dirs
    server.start()
    try:
        yield server
    finally:
        server.stop()
        _record_figures(server)


def _record_figures(server: ComfyServer) -> None:
    """Leave the measured start time and peak memory where a person can find them."""
    line = (f"[i2p test] server start {server.start_seconds or 0:.1f} s, "
            f"peak RSS {(server.peak_rss_bytes or 0) / 2**30:.2f} GiB")
    with open(server.log_path, "a") as f:
        f.write(line + "\n")
    sys.stderr.write("\n".join([*(f"[i2p test] {f}" for f in server.figures), line]) + "\n")


if __name__ == "__main__":  # python comfyui_fixtures.py build CACHE PROFILE ID... (see build_models_in_subprocess)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    _, _cmd, _cache, _profile, *_ids = sys.argv
    _built, _skipped = build_models(Path(_cache), _ids, _profile)
    print(json.dumps({"built": {k: str(v) for k, v in _built.items()}, "skipped": _skipped}))
