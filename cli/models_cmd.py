"""``python -m ip_to_portrait models list|download|verify``: the manifest's weights on disk.

Ids may also name a group (``buffalo_l`` = its five ONNX files). Without ids, ``list`` shows
everything while ``download``/``verify`` want ``--all`` so a bare command never starts 20 GB of
downloads.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..models import download as dl
from ..models import manifest


def add_parser(subparsers) -> None:
    models = subparsers.add_parser(
        "models", help="list, download and verify model weights",
        description="List, download and verify the model files IP-to-Portrait can use "
                    "(folders and names as IPAdapter_plus / ReActor users already have them).",
    )
    actions = models.add_subparsers(dest="models_action", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("ids", nargs="*", help="manifest ids or group names (see `models list`)")
        where = p.add_mutually_exclusive_group()
        where.add_argument("--models-dir", metavar="DIR",
                           help="a ComfyUI-style models folder (default: $I2P_MODELS_DIR, "
                                "$COMFYUI_PATH/models, models/ of the ComfyUI whose custom_nodes "
                                "holds this pack, ./models)")
        where.add_argument("--comfyui", metavar="PATH", help="a ComfyUI install; files go to PATH/models/<folder>")

    p_list = actions.add_parser("list", help="show every model, where it goes, its licence, and whether it is installed")
    common(p_list)
    p_list.add_argument("--non-commercial", action="store_true", help="only models whose licence forbids commercial use")
    p_list.set_defaults(func=cmd_list)

    p_dl = actions.add_parser("download", help="download, verify sha256, install atomically (resumes)")
    common(p_dl)
    p_dl.add_argument("--all", action="store_true", help="every model in the manifest")
    p_dl.add_argument("--allow-unverified", action="store_true",
                      help="also fetch entries that have no published sha256 (not verified!)")
    p_dl.add_argument("--force", action="store_true",
                      help="replace a present file whose sha256 is wrong (only by a verified download)")
    p_dl.add_argument("--retries", type=int, default=3, help="resume this many times after a cut connection")
    p_dl.add_argument("--timeout", type=float, default=60.0, help="seconds without data before giving up")
    p_dl.add_argument("--quiet", action="store_true", help="no progress bar")
    p_dl.set_defaults(func=cmd_download)

    p_verify = actions.add_parser("verify", help="hash installed files against the manifest")
    common(p_verify)
    p_verify.add_argument("--all", action="store_true", help="every model in the manifest")
    p_verify.add_argument("--quiet", action="store_true", help="no progress bar")
    p_verify.set_defaults(func=cmd_verify)


def select(ids: list[str], everything: bool, entries=None) -> list[manifest.ModelFile]:
    """Manifest entries for ids and group names, in manifest order, without duplicates."""
    entries = manifest.MODELS if entries is None else entries
    if everything or not ids:
        return list(entries)
    chosen: list[manifest.ModelFile] = []
    unknown = []
    for wanted in ids:
        hits = [m for m in entries if m.id == wanted or (m.group and m.group == wanted)]
        if not hits:
            unknown.append(wanted)
        chosen += [m for m in hits if m not in chosen]
    if unknown:
        known = ", ".join(sorted({m.id for m in entries} | {m.group for m in entries if m.group}))
        raise dl.DownloadError(f"unknown model id(s): {', '.join(unknown)}. Known: {known}")
    return chosen


def _root(args) -> Path:
    return dl.resolve_models_dir(args.models_dir, args.comfyui)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def cmd_list(args) -> int:
    try:
        root = _root(args)
        entries = select(args.ids, False)
    except dl.DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = [["id", "folder/file", "size", "installed", "commercial", "licence"]]
    for m in entries:
        if args.non_commercial and m.commercial:
            continue
        path = dl.installed_path(m, root)
        if path is None:
            state = "no"
        elif m.size and path.stat().st_size != m.size:
            state = "wrong size"
        else:
            state = "yes"
        rows.append([m.id, m.relpath, dl.human_size(m.size), state, "yes" if m.commercial else "NO", m.license])
    print(f"models folder: {root}")
    print(_table(rows))
    print("\n`models verify` hashes installed files; `models download <id>` installs one. "
          "Licence links: docs/models.md or the I2P Model Licenses node.")
    return 0


def cmd_download(args) -> int:
    try:
        if not args.ids and not args.all:
            raise dl.DownloadError("name the model ids to download (see `models list`), or pass --all")
        root = _root(args)
        entries = select(args.ids, args.all)
    except dl.DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"models folder: {root}")
    unverified = [m.id for m in entries if not m.sha256]
    if unverified and args.allow_unverified:
        print(f"WARNING: no published sha256 for {', '.join(unverified)}: these downloads cannot be verified.",
              file=sys.stderr)
    show = False if args.quiet else None
    failed = 0
    for m in entries:
        if not m.commercial:
            print(f"note: {m.id} is licensed for NON-COMMERCIAL use only ({m.license}).")
        outcome = dl.download(m, root, force=args.force, allow_unverified=args.allow_unverified,
                              timeout=args.timeout, retries=max(args.retries, 0), show_progress=show)
        stream = sys.stdout if outcome.ok else sys.stderr
        label = {"refused": "REFUSED", "present-bad": "KEPT (wrong sha256)"}.get(outcome.status, "FAILED")
        print(("ok: " if outcome.ok else f"{label}: ") + outcome.message, file=stream)
        failed += not outcome.ok
    if failed:
        print(f"{failed} of {len(entries)} model(s) not installed.", file=sys.stderr)
    return 1 if failed else 0


def cmd_verify(args) -> int:
    try:
        root = _root(args)
        entries = select(args.ids, args.all)
    except dl.DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"models folder: {root}")
    named = bool(args.ids) and not args.all
    problems = 0
    for m in entries:
        state, path, detail = dl.check_file(m, root, show_progress=not args.quiet and sys.stderr.isatty())
        if state == "missing" and not named:
            print(f"-          {m.id}: not installed")
            continue
        label = {"ok": "OK", "bad": "MISMATCH", "missing": "MISSING", "unverified": "UNCHECKED"}[state]
        print(f"{label:<10} {m.id}: {path or m.relpath} - {detail}")
        problems += state in ("bad", "missing")
    return 1 if problems else 0
