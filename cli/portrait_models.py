"""The model step of ``portrait``: what the workflow needs, what is missing, one question, downloads.

Files come through the same verified downloader as ``models download`` (resume, sha256, atomic
rename). Entries with a published sha256 are verified; entries with only a published size are
size-checked and listed as such before the question; entries with neither (e.g. a checkpoint behind
a login page) cannot be fetched automatically and are listed with their source page and target path.

``$I2P_MODEL_SOURCES`` names a JSON file ``{"<id>": {"url": ..., "sha256": ..., "size": ...}}`` that
replaces where files come from and what they are checked against: an in-house mirror of the
published files, or the loopback server the tests use. Only ids named there change.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Callable

from ..models import download as dl
from ..models.manifest import ModelFile

SOURCES_ENV = "I2P_MODEL_SOURCES"


class ModelsNotReady(RuntimeError):
    """The workflow cannot run yet; the message says which files and what to do."""


def with_sources(entries: list[ModelFile]) -> list[ModelFile]:
    """``entries`` with ``$I2P_MODEL_SOURCES`` applied (see the module docstring)."""
    path = os.environ.get(SOURCES_ENV)
    if not path:
        return entries
    try:
        sources = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelsNotReady(f"{SOURCES_ENV}={path}: cannot read it ({exc})") from None
    out = []
    for m in entries:
        src = sources.get(m.id)
        if isinstance(src, dict):
            m = dataclasses.replace(m, url=str(src.get("url", m.url)), sha256=str(src.get("sha256", m.sha256)),
                                    size=int(src.get("size", m.size)))
        out.append(m)
    return out


def check_kind(m: ModelFile) -> str:
    if m.sha256:
        return "sha256"
    return "size only" if m.size else "by hand"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _ask(question: str) -> bool:
    print(question + " [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        answer = input()
    except EOFError:
        answer = ""
    if not sys.stdin.isatty():
        print(answer, file=sys.stderr)  # a piped answer is not echoed by the terminal
    return answer.strip().lower() in ("y", "yes")


def ensure_models(needed: list[ModelFile], models_root: Path, *, assume_yes: bool, workflow: str,
                  comfyui: Path, log: Callable[[str], None], ask: Callable[[str], bool] = _ask) -> None:
    """Return when every needed file is present; otherwise list, ask once, download, or raise."""
    missing = [m for m in needed if dl.installed_path(m, models_root) is None]
    if not missing:
        log(f"models: all {len(needed)} file(s) that {workflow} needs are in {models_root}")
        return
    automatic = [m for m in missing if check_kind(m) != "by hand"]
    manual = [m for m in missing if check_kind(m) == "by hand"]
    rows = [["id", "file", "size", "checked by", "licence"]]
    rows += [[m.id, m.relpath, dl.human_size(m.size), check_kind(m),
              ("" if m.commercial else "NON-COMMERCIAL: ") + m.license] for m in missing]
    total = sum(m.size for m in automatic)
    log(f"models: {workflow} needs {len(missing)} file(s) that are not in {models_root}:\n" + _table(rows))
    hand = "".join(f"\n  {m.id}: get it from {m.url} and save it as {models_root / m.folder / m.filename}"
                   for m in manual)
    if not automatic:
        raise ModelsNotReady("these files cannot be downloaded automatically:" + hand + "\nthen run this command again.")
    unchecked = [m.id for m in automatic if not m.sha256]
    question = (f"Download {len(automatic)} file(s), {dl.human_size(total)}, into {models_root}"
                + (f" ({', '.join(unchecked)} can only be checked by size)" if unchecked else "") + "?")
    if not (assume_yes or ask(question)):
        ids = " ".join(m.id for m in automatic)
        raise ModelsNotReady(
            f"nothing was downloaded, so {workflow} cannot run. Download them later with\n"
            f"  python -m ip_to_portrait models download {ids} --comfyui {comfyui}"
            + (" --allow-unverified" if unchecked else "") + "\nor run this command again and answer y (or pass --yes).")
    failed = []
    for m in automatic:
        outcome = dl.download(m, models_root, allow_unverified=not m.sha256, retries=3, log=log)
        log(("ok: " if outcome.ok else "FAILED: ") + outcome.message)
        if not outcome.ok:
            failed.append(m.id)
    if failed:
        raise ModelsNotReady(f"{len(failed)} download(s) failed ({', '.join(failed)}): see above. "
                             "Run the same command again; a cut download resumes where it stopped.")
    if manual:
        raise ModelsNotReady("the downloads are done, but these files must be placed by hand:" + hand
                             + "\nthen run this command again.")
