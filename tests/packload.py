"""Load the pack exactly as ComfyUI does: ``__init__.py`` by file path under a mangled module name
(ComfyUI uses the folder's path with dots replaced), so relative imports are exercised and an
absolute self-import would fail here just as it fails in ComfyUI."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PACK_ROOT = Path(__file__).resolve().parent.parent
PACK_MODULE_NAME = str(PACK_ROOT / "custom_nodes_under_test").replace(".", "_x_")


def load_pack() -> ModuleType:
    if PACK_MODULE_NAME in sys.modules:
        return sys.modules[PACK_MODULE_NAME]
    spec = importlib.util.spec_from_file_location(PACK_MODULE_NAME, PACK_ROOT / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[PACK_MODULE_NAME]
        raise
    return module


def pack_module(dotted: str) -> ModuleType:
    """A submodule of the loaded pack, e.g. ``pack_module("core.images")``."""
    load_pack()
    return importlib.import_module(f"{PACK_MODULE_NAME}.{dotted}")
