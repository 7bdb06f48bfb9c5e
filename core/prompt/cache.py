"""The auto prompt's answer cache: an LRU in memory plus one small JSON file per answer on disk.

One file per entry (rather than one JSON of everything) means a write never rewrites other entries
and two ComfyUI processes sharing a user folder cannot lose each other's answers; each file is written
to a temporary name and renamed, so a crash never leaves half a file behind.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

log = logging.getLogger("ip_to_portrait.auto_prompt")


class PromptCache:
    """LRU in memory, plus one small JSON file per entry on disk (written atomically) when a folder
    is given, so answers survive a ComfyUI restart."""

    def __init__(self, max_entries: int = 256, max_files: int = 2000):
        self.max_entries = max_entries
        self.max_files = max_files
        self._mem: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, folder: Path | None = None) -> dict | None:
        with self._lock:
            if key in self._mem:
                self._mem.move_to_end(key)
                return dict(self._mem[key])
        if folder is None:
            return None
        try:
            entry = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or not isinstance(entry.get("description"), str):
            return None
        self._remember(key, entry)
        return dict(entry)

    def put(self, key: str, entry: dict, folder: Path | None = None) -> None:
        self._remember(key, entry)
        if folder is None:
            return
        tmp = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(entry, f, indent=1)
            os.replace(tmp, folder / f"{key}.json")
            tmp = None
            self._prune(folder)
        except OSError as exc:  # a read-only user folder costs the disk cache, not the result
            log.warning("auto prompt: could not write the cache in %s (%s)", folder, type(exc).__name__)
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)

    def clear_memory(self) -> None:
        with self._lock:
            self._mem.clear()

    def _remember(self, key: str, entry: dict) -> None:
        with self._lock:
            self._mem[key] = dict(entry)
            self._mem.move_to_end(key)
            while len(self._mem) > self.max_entries:
                self._mem.popitem(last=False)

    def _prune(self, folder: Path) -> None:
        files = list(folder.glob("*.json"))
        if len(files) <= self.max_files:
            return
        files.sort(key=lambda p: p.stat().st_mtime)
        for p in files[: len(files) - self.max_files]:
            p.unlink(missing_ok=True)
