"""Whether a string can be a name inside a folder: the spelling check every file or folder name from a
node input passes first (core/paths.py adds the checks on the real file system). Pure, so the ComfyUI
adapter can use it too."""
from __future__ import annotations

import re

_DRIVE = re.compile(r"^[A-Za-z]:")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a name relative to a folder, or None when it can."""
    if not isinstance(name, str) or not name.strip():
        return "is empty"
    text = name.strip().replace("\\", "/")
    if "\x00" in text:
        return "contains a NUL character"
    if text.startswith("/") or _DRIVE.match(text):
        return "is an absolute path"
    if ".." in text.split("/"):
        return "contains '..'"
    return None
