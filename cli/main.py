"""Entry point of ``python -m ip_to_portrait`` and of the launcher ``i2p.py``. Each sub-command lives
in its own module with an ``add_parser(subparsers)`` function that sets ``func`` on its parser."""
from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMAND_MODULES = ("models_cmd", "run_cmd", "portrait_cmd", "queue_worker", "queue_client")


DEFAULT_PROG = "python -m ip_to_portrait"


def build_parser(prog: str = DEFAULT_PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="IP-to-Portrait tools")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(f".{name}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(name):
                continue  # sub-command not built yet
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None, prog: str = DEFAULT_PROG) -> int:
    """``prog`` is how the user started the CLI, so usage lines repeat a command that works."""
    args = build_parser(prog).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
