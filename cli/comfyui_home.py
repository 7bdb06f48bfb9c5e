"""Which ComfyUI the ``portrait`` command uses, and installing a private one when there is none.

Order: ``--comfyui PATH``, ``$COMFYUI_PATH``, the ComfyUI this pack sits in (``<ComfyUI>/custom_nodes/
<pack>``), the private one under the per-user folder, else a fresh private install made with the
ecosystem's own installer, comfy-cli (``pip install 'ip-to-portrait[standalone]'``, or
``bash setup.sh --standalone``). The private install is ordinary ComfyUI: comfy-cli gives it its own
virtual environment, and the pack is linked into its ``custom_nodes`` and its requirements installed
there, so it is used exactly like a ComfyUI the user set up by hand.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from ..core import comfy_adapter
from .local_comfyui import comfyui_python

PACK_ROOT = Path(__file__).resolve().parent.parent
PACK_LINK_NAME = "ip_to_portrait"
HOME_ENV = "I2P_HOME"  # overrides the per-user folder
INSTALLER_ENV = "I2P_COMFY_CLI"  # the comfy-cli command to run (a path, or a command line)


class ComfyUINotFound(RuntimeError):
    """No ComfyUI, and none could be installed; the message carries the manual steps."""


def user_home() -> Path:
    """The pack's per-user data folder (``$I2P_HOME`` overrides it): ``$XDG_DATA_HOME`` or
    ``~/.local/share`` on Linux, ``~/Library/Application Support`` on macOS, ``%LOCALAPPDATA%`` on
    Windows, each followed by ``ip_to_portrait`` (the platformdirs convention)."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "ip_to_portrait"


def private_comfyui() -> Path:
    return user_home() / "ComfyUI"


def is_comfyui(path: Path) -> bool:
    return (path / "main.py").is_file() and (path / "custom_nodes").is_dir()


def enclosing_comfyui() -> Path | None:
    """The ComfyUI whose ``custom_nodes`` holds this pack (also through a link), if it can be started."""
    home = comfy_adapter.enclosing_comfyui()
    return home if home is not None and (home / "main.py").is_file() else None


def find_comfyui(explicit: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """``(path, how it was found)``; path is None when only a fresh private install is left."""
    if explicit:
        path = Path(explicit).expanduser().resolve()
        if not (path / "main.py").is_file():
            raise ComfyUINotFound(f"--comfyui {explicit}: no ComfyUI there (main.py is missing)")
        return path, "--comfyui"
    env = os.environ.get("COMFYUI_PATH")
    if env:
        path = Path(env).expanduser().resolve()
        if not (path / "main.py").is_file():
            raise ComfyUINotFound(f"COMFYUI_PATH={env}: no ComfyUI there (main.py is missing); "
                                  "fix the variable or unset it to use the private ComfyUI")
        return path, "$COMFYUI_PATH"
    here = enclosing_comfyui()
    if here is not None:
        return here, "the ComfyUI this pack is installed in"
    private = private_comfyui()
    if is_comfyui(private):
        return private, "the private ComfyUI"
    return None, "none"


# ------------------------------------------------------------------------------------ installing
def installer_command() -> list[str] | None:
    """How to run comfy-cli: ``$I2P_COMFY_CLI``, else ``comfy`` next to this Python, else on PATH."""
    env = os.environ.get(INSTALLER_ENV)
    if env:
        return shlex.split(env)
    beside = Path(sys.executable).parent / ("comfy.exe" if sys.platform == "win32" else "comfy")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("comfy")
    return [found] if found else None


def gpu_install_flag(gpu: str | None) -> str:
    """comfy-cli's torch flavour for what ``local_comfyui.detect_gpu`` found."""
    if not gpu:
        return "--cpu"
    return {"nvidia": "--nvidia", "amd": "--amd", "mps": "--m-series"}.get(gpu.split()[0].lower(), "--cpu")


def manual_steps(target: Path) -> str:
    return (
        "To get one, either:\n"
        f"  1. install comfy-cli and run this command again (it installs ComfyUI into {target}):\n"
        f"       {sys.executable} -m pip install 'comfy-cli>=1.0'      (or: bash setup.sh --standalone)\n"
        "  2. or install ComfyUI yourself and point this command at it:\n"
        f"       git clone https://github.com/comfyanonymous/ComfyUI {target}\n"
        f"       python -m pip install -r {target}/requirements.txt -r {PACK_ROOT}/requirements.txt\n"
        f"       ln -s {PACK_ROOT} {target}/custom_nodes/{PACK_LINK_NAME}\n"
        f"     then pass --comfyui {target} (or set COMFYUI_PATH)."
    )


def _run(cmd: list[str], what: str, log: Callable[[str], None], env: dict | None = None) -> None:
    """Run a setup step, its output passed line by line to ``log`` (stderr): stdout stays for results."""
    log(f"{what}: {' '.join(cmd)}")
    try:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
    except OSError as exc:
        raise ComfyUINotFound(f"{what} could not start ({exc}).") from None
    for line in proc.stdout:
        log("  | " + line.rstrip())
    if proc.wait() != 0:
        raise ComfyUINotFound(f"{what} failed (exit code {proc.returncode}); its output is above.")


def install_private(gpu: str | None, log: Callable[[str], None] = print) -> Path:
    """Install ComfyUI into the per-user folder with comfy-cli, link the pack, install the pack's
    requirements into ComfyUI's Python. Raises ComfyUINotFound with the manual steps."""
    target = private_comfyui()
    command = installer_command()
    if command is None:
        raise ComfyUINotFound(f"No ComfyUI was found (--comfyui, COMFYUI_PATH, a custom_nodes install, "
                              f"{target}) and its installer, comfy-cli, is not installed.\n" + manual_steps(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    # no VIRTUAL_ENV: comfy-cli then gives the workspace its own .venv instead of filling ours
    try:
        _run([*command, "--skip-prompt", f"--workspace={target}", "install", "--skip-manager",
              gpu_install_flag(gpu)], "installing ComfyUI with comfy-cli", log, env)
    except ComfyUINotFound as exc:
        raise ComfyUINotFound(f"{exc}\n" + manual_steps(target)) from None
    if not (target / "main.py").is_file():
        raise ComfyUINotFound(f"comfy-cli finished but {target} has no main.py.\n" + manual_steps(target))
    link_pack(target, log)
    python = comfyui_python(target)
    if Path(python).resolve() != Path(sys.executable).resolve():
        _run([python, "-m", "pip", "install", "-r", str(PACK_ROOT / "requirements.txt")],
             "installing the pack's requirements into ComfyUI's Python", log)
    return target


def link_pack(comfyui: Path, log: Callable[[str], None] = print) -> None:
    """Make this pack one of ComfyUI's custom nodes (a symbolic link to this folder)."""
    nodes = comfyui / "custom_nodes"
    nodes.mkdir(exist_ok=True)
    link = nodes / PACK_LINK_NAME
    if link.is_symlink() and link.resolve() == PACK_ROOT:
        return
    if link.exists() or link.is_symlink():
        raise ComfyUINotFound(f"{link} exists and is not a link to {PACK_ROOT}; remove it or pass --comfyui.")
    try:
        link.symlink_to(PACK_ROOT, target_is_directory=True)
    except OSError as exc:
        raise ComfyUINotFound(f"could not link the pack into {nodes} ({exc}); copy or link {PACK_ROOT} "
                              f"there as {PACK_LINK_NAME} by hand.") from None
    log(f"linked the pack into ComfyUI: {link} -> {PACK_ROOT}")
