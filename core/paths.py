"""Where a node input that names a file may point, and how such a file is shown and written.

Any HTTP client can queue a prompt, so every string that names a file is untrusted. ComfyUI's own
nodes keep such names inside its ``output``/``input``/``user`` folders and the registered model
folders; this module does the same for the pack, in one place:

- :func:`plain_name` rejects what can climb out of any folder by its spelling: an absolute path, a
  drive or UNC prefix, ``..``, a NUL byte.
- :func:`inside` also resolves symlinks and checks that the real file stays inside the real folder
  and outside ``custom_nodes`` (the pack's code and every other pack's).
- :func:`display` turns a server path into what a node's text may show: ``models/ipadapter/x.bin``,
  ``output/y.png``; never the server's absolute path.
- :func:`publish` moves a finished temporary file into place: atomically, and without replacing an
  existing file unless asked (a free numbered name instead, like ComfyUI's ``SaveImage`` counter).

Model combos (checkpoints, ONNX graphs) only get :func:`plain_name`: ComfyUI follows symlinks that an
administrator put into a models folder (weights on another disk), and so does the pack.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import comfy_adapter
from .errors import I2PError
from .names import name_problem

PACK_ROOT = Path(__file__).resolve().parent.parent
COUNTER_DIGITS = 5


def plain_name(name: str, node: str, input_name: str, folder_label: str) -> str:
    """``name`` with forward slashes and no empty or ``.`` parts; raises I2PError when it could leave
    its folder (absolute, drive letter, ``..``)."""
    problem = name_problem(name)
    if problem:
        raise I2PError(node, input_name, f"'{name}' {problem}: only names inside {folder_label} are allowed.",
                       f"give a name relative to {folder_label}, e.g. 'anna' or 'family/anna'.")
    parts = [p for p in name.strip().replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts:
        raise I2PError(node, input_name, f"'{name}' names no file.", f"give a file name inside {folder_label}.")
    return "/".join(parts)


def forbidden_roots() -> list[Path]:
    """Folders no node input may reach: ComfyUI's ``custom_nodes`` folders and this pack itself."""
    roots = [PACK_ROOT]
    fp = comfy_adapter.comfy_module("folder_paths")
    if fp is not None and hasattr(fp, "get_folder_paths"):
        try:
            roots += [Path(p).resolve() for p in fp.get_folder_paths("custom_nodes")]
        except (KeyError, OSError):
            pass
    return roots


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def inside(root: str | os.PathLike, name: str, node: str, input_name: str, folder_label: str) -> Path:
    """The path of ``name`` inside ``root``, after following every symlink: raises I2PError when it
    leaves ``root`` (by its spelling or through a symlink) or lands in ``custom_nodes``. The file
    need not exist yet (a save target)."""
    rel = plain_name(name, node, input_name, folder_label)
    real_root = Path(root).resolve()
    real = (real_root / rel).resolve()
    if not _within(real, real_root):
        raise I2PError(node, input_name, f"'{name}' leads out of {folder_label} (through a symbolic link).",
                       f"use a file that really lies inside {folder_label}.")
    if any(_within(real, bad) for bad in forbidden_roots()):
        raise I2PError(node, input_name, f"'{name}' lies inside ComfyUI's custom_nodes (code, not data).",
                       f"configure {folder_label} outside custom_nodes, or pick another file.")
    return Path(root) / rel


def find_inside(roots: list[Path], name: str, node: str, input_name: str, folder_label: str) -> Path | None:
    """The first existing ``name`` inside one of ``roots`` (checked as :func:`inside`), or None."""
    for root in roots:
        candidate = inside(root, name, node, input_name, folder_label)
        if candidate.exists():
            return candidate
    return None


def display(path: str | os.PathLike, folder: str | None = None) -> str:
    """What a node may show for ``path``: relative to the ComfyUI folder it lies in
    (``models/<folder>/...``, ``output/...``, ``input/...``, ``user/...``), else its bare file name."""
    p = Path(os.path.abspath(path))
    candidates: list[tuple[str, Path]] = []
    if folder:
        candidates += [(f"models/{folder}", d) for d in comfy_adapter.folder_dirs(folder)]
    candidates += [("models", comfy_adapter.models_dir()), ("output", comfy_adapter.output_dir()),
                   ("input", comfy_adapter.input_dir()), ("user", comfy_adapter.user_dir())]
    for label, root in candidates:
        for base, target in ((Path(os.path.abspath(root)), p), (Path(root).resolve(), p.resolve())):
            if _within(target, base):
                rel = target.relative_to(base).as_posix()
                return label if rel == "." else f"{label}/{rel}"
    return p.name


def numbered(path: Path, n: int) -> Path:
    """``anna.safetensors`` → ``anna_00001.safetensors`` (n = 1)."""
    return path.with_name(f"{path.stem}_{n:0{COUNTER_DIGITS}d}{path.suffix}")


def publish(tmp: str | os.PathLike, dest: Path, overwrite: bool) -> Path:
    """Move the finished file ``tmp`` to ``dest`` atomically and return where it went.

    ``overwrite``: replace ``dest``. Otherwise an existing file is never touched: the file goes to
    the first free ``<stem>_00001<suffix>``, ``_00002``, ... A hard link claims the name atomically
    (two saves at once cannot both take it); where the file system has no hard links, an exists
    check and a rename do the same outside that race.
    """
    tmp = Path(tmp)
    if overwrite:
        os.replace(tmp, dest)
        return dest
    for n in range(10 ** COUNTER_DIGITS):
        target = dest if n == 0 else numbered(dest, n)
        try:
            os.link(tmp, target)
        except FileExistsError:
            continue
        except OSError:  # no hard links here (some network or FAT file systems)
            if target.exists() or target.is_symlink():
                continue
            os.replace(tmp, target)
            return target
        os.unlink(tmp)
        return target
    raise FileExistsError(f"every numbered name of {dest.name} is taken")
