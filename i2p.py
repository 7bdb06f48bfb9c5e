"""The pack's command line from any working directory: ``python <pack folder>/i2p.py models list``.

``python -m ip_to_portrait`` needs the pack's parent folder on ``sys.path`` and the folder to be named
``ip_to_portrait``; a pack cloned into ``ComfyUI/custom_nodes`` by hand is neither (the working
directory is elsewhere, and a default clone is named ``IP-to-Portrait``, which is no identifier). This
launcher imports the folder it sits in under the import name ``ip_to_portrait`` by file path, whatever
the folder is called, and runs the same ``cli.main`` as ``python -m ip_to_portrait``.

ComfyUI never imports this file: it loads ``__init__.py`` of the pack's folder only.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

IMPORT_NAME = "ip_to_portrait"


def load_pack(folder: str):
    """The package in ``folder`` under :data:`IMPORT_NAME`, imported by file path."""
    spec = importlib.util.spec_from_file_location(IMPORT_NAME, os.path.join(folder, "__init__.py"),
                                                  submodule_search_locations=[folder])
    module = importlib.util.module_from_spec(spec)
    sys.modules[IMPORT_NAME] = module
    spec.loader.exec_module(module)
    return module


def run() -> int:
    # abspath, not realpath: a pack linked into custom_nodes/ must still see the ComfyUI it is linked
    # into (the CLI's default models folder is the ComfyUI two levels above the pack).
    folder = os.path.dirname(os.path.abspath(__file__))
    # Python put this folder first on sys.path; its sub-folders (core, models, nodes, cli) would then
    # shadow top-level packages of the same names for every library the CLI imports.
    here = os.path.realpath(folder)
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != here]
    load_pack(folder)
    cli = importlib.import_module(f"{IMPORT_NAME}.cli.main")
    return cli.main(prog=f"python {sys.argv[0]}")


if __name__ == "__main__":
    sys.exit(run())
