"""Builds the bundled workflows: ``python workflows/build.py`` (``--check`` only compares).

Each workflow is described once as Python (``recipes.py``, ``recipes_more.py``, from the pieces in
``pieces.py``); ``graph.py`` writes it as the UI file the editor
opens (``workflows/<name>.json``, served by ComfyUI as a template, with ``<name>.jpg`` as its
thumbnail) and as the API file scripts and the CLI submit (``workflows/api/<name>.json``; ComfyUI only
serves ``*.json`` directly inside ``workflows/``, so the API copies in the sub-folder never show up as
broken templates). Run it again whenever a node's inputs change; tests/test_workflows.py fails until
the files match.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from graph import load_schemas  # noqa: E402
from thumbnail import render  # noqa: E402
from recipes import auto_prompt, couple_photo, fast_swap, pre_paste, recommended_portrait  # noqa: E402
from recipes_more import commercial_couple, commercial_portrait, edit_model_portrait, qwen_edit_portrait  # noqa: E402

WORKFLOWS = {f.__name__: f for f in (recommended_portrait, fast_swap, couple_photo, auto_prompt, pre_paste,
                                     commercial_portrait, commercial_couple, edit_model_portrait,
                                     qwen_edit_portrait)}


def build_all(schemas=None) -> dict[str, tuple[dict, dict]]:
    """{name: (ui, api)} for every workflow."""
    schemas = schemas or load_schemas()
    out = {}
    for name, make in WORKFLOWS.items():
        g = make(schemas)
        out[name] = (g.to_ui(), g.to_api())
    return out


def dump(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the files on disk, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for name, (ui, api) in build_all().items():
        for path, data in ((HERE / f"{name}.json", ui), (HERE / "api" / f"{name}.json", api)):
            text = dump(data)
            if args.check:
                if not path.is_file() or path.read_text(encoding="utf-8") != text:
                    stale.append(str(path))
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if not args.check:
            render(ui, HERE / f"{name}.jpg")
    if stale:
        print("out of date (run python workflows/build.py):\n  " + "\n  ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
