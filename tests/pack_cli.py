"""Run this checkout's command line in a child process: ``python tests/pack_cli.py worker ...``.

The pack root is registered as a bare package named ``ip_to_portrait`` without running its
``__init__.py`` (no node is loaded: the CLI needs none), so the child runs the code of the checkout
the tests live in, whatever the installed ``ip_to_portrait`` points at."""
from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    package = types.ModuleType("ip_to_portrait")
    package.__path__ = [str(PACK_ROOT)]
    sys.modules["ip_to_portrait"] = package
    return importlib.import_module("ip_to_portrait.cli.main").main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
