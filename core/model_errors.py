"""Model files that are missing or cannot be read: errors that name the file as ComfyUI shows it
(folder-relative, never the server's path) and the command that fetches a good copy."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator

from . import comfy_adapter
from .errors import I2PError
from .paths import display, name_problem

log = logging.getLogger(__name__)


def download_command(model_ids: str) -> str:
    """The command that downloads manifest ids, spelled so the user can paste it: for a pack cloned into
    ``custom_nodes`` (the README's install) the launcher next to it, as typed in the ComfyUI folder (the
    pack's folder may have any name; ``python -m ip_to_portrait`` would only work from custom_nodes/);
    elsewhere (``pip install -e``) the module. No absolute path: node texts never show the server's."""
    if comfy_adapter.enclosing_comfyui() is not None:
        return f"python custom_nodes/{comfy_adapter.PACK_DIR.name}/i2p.py models download {model_ids}"
    return f"python -m ip_to_portrait models download {model_ids}"


class ModelFileMissing(I2PError):
    """A model file the node needs is not in its folder; the message says where it should go and how
    to download it."""

    def __init__(self, node: str, input_name: str | None, folder: str, filename: str, model_id: str | None = None):
        problem = name_problem(filename)
        if problem:  # a hand-edited or API-queued prompt: say why, not "not found"
            super().__init__(node, input_name, f"'{filename}' {problem}: model files are named relative to "
                             f"models/{folder}.", f"pick a file from the list (a name inside models/{folder}).")
        else:
            fix = f"put '{filename}' into ComfyUI's models/{folder}/"
            if model_id:
                fix += f" or run: {download_command(model_id)}"
            super().__init__(node, input_name, f"model file '{filename}' was not found in models/{folder}.", fix + ".")
        self.folder = folder
        self.filename = filename


class ModelFileUnreadable(I2PError):
    """A model file (or pack folder) is there but cannot be read: an interrupted download, a damaged
    disk, another format under a model's name. The message names the file as ComfyUI shows it and
    how to get a good copy; the library's own text goes to the log, not to the user."""

    def __init__(self, node: str, input_name: str | None, shown: str, what: str, model_id: str | None = None,
                 size: int | None = None, unsafe_pickle: bool = False):
        if unsafe_pickle:  # a whole file, but torch's weights-only loader refuses the code objects in it
            state = "holds Python objects besides tensors, which are not loaded (they could run code)"
            fix = "use the weights-only file its publisher provides (.safetensors where there is one)"
        else:
            state = "is empty (0 bytes)" if size == 0 else "is damaged or incomplete (an interrupted download?)"
            fix = "delete it and download it again"
        if model_id:  # after the delete, the command installs it like a missing file (with its checks)
            fix += f", e.g. with: {download_command(model_id)}"
        elif not unsafe_pickle:
            fix += " or copy a complete file over it"
        super().__init__(node, input_name, f"{shown} {state}: it could not be read as {what}.", fix + ".")
        self.shown = shown


@contextmanager
def model_file_errors(node: str, input_name: str | None, path: str | os.PathLike, what: str,
                      model_id: str | None = None, folder: str | None = None) -> Iterator[None]:
    """Turn whatever a loader (torch, safetensors, onnxruntime, spandrel, transformers) raises while
    *reading* ``path`` into :class:`ModelFileUnreadable`. Our own errors and a user's cancel pass
    through. Wrap only the read, not the checks that follow it: a readable file of the wrong kind is
    a different mistake with a different fix."""
    try:
        yield
    except I2PError:
        raise
    except comfy_adapter.interrupt_exception_types():
        raise
    except Exception as exc:  # noqa: BLE001 - every library's "cannot parse" becomes one message
        raise unreadable(node, input_name, path, what, exc, model_id, folder) from None


def unreadable(node: str, input_name: str | None, path: str | os.PathLike, what: str, exc: BaseException,
               model_id: str | None = None, folder: str | None = None) -> ModelFileUnreadable:
    """The :class:`ModelFileUnreadable` for ``path``; the library's text ``exc`` is logged."""
    shown = display(path, folder)
    log.warning("[%s] cannot read %s: %s: %s", node, shown, type(exc).__name__, str(exc)[:500])
    try:
        size = os.path.getsize(path) if os.path.isfile(path) else None
    except OSError:
        size = None
    unsafe = False
    if "weights only load failed" in str(exc).lower() and size:
        import zipfile

        with open(path, "rb") as f:  # a complete torch zip, refused for its contents, not for damage
            unsafe = f.read(4) == b"PK\x03\x04" and zipfile.is_zipfile(path)
    return ModelFileUnreadable(node, input_name, shown, what, model_id, size, unsafe)
