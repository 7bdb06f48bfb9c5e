"""Random-weight models in the real file formats, file names and key layouts of every manifest entry,
laid out as a ComfyUI ``models/`` tree, so the pack's real loading code runs in tests.

Profiles: ``tiny`` (CI: seconds, small dims wherever the loader infers dims from shapes) and ``full``
(real architecture sizes, for integration runs in a real ComfyUI, which recognises SDXL only by its
real shapes). Every builder is seeded, so the same profile always gives the same bytes.

Each module in this package registers builders with :func:`builder`; modules are discovered, so a
stage adds its builders without touching this file.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Callable

PROFILES = ("tiny", "full")
Builder = Callable[[Path, str], None]  # (destination file path, profile) -> writes the file
BUILDERS: dict[str, Builder] = {}


def builder(*model_ids: str) -> Callable[[Builder], Builder]:
    def register(fn: Builder) -> Builder:
        for model_id in model_ids:
            if model_id in BUILDERS:
                raise RuntimeError(f"two builders for {model_id}")
            BUILDERS[model_id] = fn
        return fn

    return register


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def manifest():
    from packload import pack_module

    return pack_module("models.manifest")


def build(model_id: str, models_dir: Path, profile: str = "tiny") -> Path:
    """Write the test file for one manifest id under ``models_dir`` (skip if already there)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}")
    _discover()
    entry = manifest().by_id(model_id)
    dest = Path(models_dir) / entry.folder / entry.filename
    if not dest.exists():
        if model_id not in BUILDERS:
            raise KeyError(f"no test-model builder for manifest id '{model_id}'")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        BUILDERS[model_id](tmp, profile)
        tmp.replace(dest)
    return dest


def build_all(models_dir: Path, profile: str = "tiny", ids: list[str] | None = None) -> dict[str, Path]:
    ids = ids if ids is not None else [m.id for m in manifest().MODELS]
    return {i: build(i, models_dir, profile) for i in ids}
