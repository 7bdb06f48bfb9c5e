"""The pack imports the way ComfyUI imports it, cheaply and without side effects."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from packload import PACK_ROOT

HEAVY = ("torch", "onnxruntime", "insightface", "diffusers", "transformers", "google.genai", "spandrel",
         "facexlib", "cv2")


def test_import_is_cheap_and_lazy():
    """Fresh interpreter: import time under 2 s and no heavy library pulled in by the import."""
    code = textwrap.dedent(
        f"""
        import json, sys, time
        sys.path.insert(0, {str(PACK_ROOT / 'tests')!r})
        t = time.perf_counter()
        from packload import load_pack
        pack = load_pack()
        elapsed = time.perf_counter() - t
        print(json.dumps({{"elapsed": elapsed, "nodes": len(pack.NODE_CLASS_MAPPINGS),
                           "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [], f"importing the pack imported {result['heavy']}"
    assert result["elapsed"] < 2.0, f"pack import took {result['elapsed']:.2f} s"


def test_no_absolute_self_imports():
    """ComfyUI loads the pack under a mangled name: an absolute import of the pack would break."""
    offenders = []
    for path in PACK_ROOT.rglob("*.py"):
        rel = path.relative_to(PACK_ROOT)
        if rel.parts[0] in ("tests", "bench", ".venv") or rel.parts[0].startswith("."):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            s = line.strip()
            if s.startswith(("from ip_to_portrait", "import ip_to_portrait", "from core", "from nodes",
                             "from models", "import core", "import nodes", "import models")):
                offenders.append(f"{rel}:{n}: {s}")
    assert offenders == []


def test_comfy_imports_only_in_adapter():
    """Every ComfyUI import goes through core/comfy_adapter.py."""
    names = ("comfy", "folder_paths", "server", "latent_preview", "node_helpers", "comfy_extras", "execution")
    offenders = []
    for path in PACK_ROOT.rglob("*.py"):
        rel = path.relative_to(PACK_ROOT)
        if rel.parts[0] in ("tests", "bench") or rel.parts[0].startswith(".") or rel.as_posix() == "core/comfy_adapter.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            s = line.strip()
            for name in names:
                if s.startswith((f"import {name}", f"from {name} ", f"from {name}.", f"import {name}.")):
                    offenders.append(f"{rel}:{n}: {s}")
    assert offenders == []


def test_root_init_imports_as_a_lone_module():
    """pytest imports the root __init__.py as a plain module named '__init__' when the checkout's
    folder name is no identifier (a clone into 'IP-to-Portrait'): that must not fail."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("__init__", PACK_ROOT / "__init__.py",
                                                  submodule_search_locations=None)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.NODE_CLASS_MAPPINGS == {}
