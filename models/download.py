"""Fetch manifest weights over HTTP(S): progress, resume, sha256, and never a bad file in place.

Plain ``urllib`` on purpose: no ComfyUI, no hub client, nothing that reaches the network on import.
The rules a user can rely on:

* bytes arrive in ``<file>.part`` next to the final file; a later run resumes it with an HTTP
  ``Range`` request (a server that answers 200 instead of 206 restarts it from zero);
* the final name appears only through an atomic rename, and only after the sha256 matched;
* a file already present with the right hash is skipped; one with a wrong hash is reported and
  kept unless ``force`` is set, and even then it is replaced only by a verified download;
* an entry without a published sha256 is refused unless ``allow_unverified`` is set.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .manifest import ModelFile

CHUNK = 1 << 20
USER_AGENT = "ip-to-portrait-model-downloader/1.0"


class DownloadError(RuntimeError):
    """A download that failed with a message meant for the user (no traceback needed).

    ``resumable``: the bytes received so far are kept in ``.part`` and another try continues them."""

    def __init__(self, message: str, resumable: bool = False):
        super().__init__(message)
        self.resumable = resumable


@dataclass
class Outcome:
    """What happened to one manifest entry."""

    model_id: str
    path: Path
    status: str  # downloaded | present | present-bad | refused | failed
    message: str

    @property
    def ok(self) -> bool:
        return self.status in ("downloaded", "present")


# --------------------------------------------------------------------------------------- locations
def comfyui_models_dir(comfyui: str | os.PathLike) -> Path:
    """``models/`` of a ComfyUI install: a checkout, the portable build's outer folder, or a desktop
    install's base path (the folder that holds ``models/``)."""
    root = Path(comfyui).expanduser()
    if not root.is_dir():
        raise DownloadError(f"--comfyui {root}: no such folder")
    for candidate in (root, root / "ComfyUI"):  # ComfyUI_windows_portable/ComfyUI
        if (candidate / "main.py").is_file() or (candidate / "folder_paths.py").is_file():
            return candidate / "models"
    if (root / "models").is_dir():
        return root / "models"
    raise DownloadError(
        f"--comfyui {root}: this does not look like a ComfyUI folder (no main.py and no models/). "
        "Pass the folder that contains ComfyUI's main.py, or use --models-dir for a plain models folder."
    )


def resolve_models_dir(models_dir: str | os.PathLike | None = None,
                       comfyui: str | os.PathLike | None = None) -> Path:
    """Where files go: ``--models-dir``, else ``--comfyui``/models, else the adapter's default
    (``$I2P_MODELS_DIR``, ``$COMFYUI_PATH/models``, the ComfyUI the pack sits in, ``./models``)."""
    if models_dir and comfyui:
        raise DownloadError("give either --models-dir or --comfyui, not both")
    if models_dir:
        return Path(models_dir).expanduser()
    if comfyui:
        return comfyui_models_dir(comfyui)
    from ..core import comfy_adapter

    return comfy_adapter.models_dir()


def target_path(entry: ModelFile, models_root: Path) -> Path:
    return Path(models_root) / entry.folder / entry.filename


def candidate_paths(entry: ModelFile, models_root: Path) -> list[Path]:
    """Existing files that may be this entry: the manifest name first, then its aliases (e.g. the LoRA
    under ``loras/ipadapter/`` where ComfyUI-Manager puts it)."""
    names = (entry.filename, *entry.aliases)
    return [p for p in (Path(models_root) / entry.folder / n for n in names) if p.is_file()]


def installed_path(entry: ModelFile, models_root: Path) -> Path | None:
    """The file as the user has it (no hashing): the manifest name, else the first alias present."""
    found = candidate_paths(entry, models_root)
    return found[0] if found else None


def part_path(final: Path) -> Path:
    return final.with_name(final.name + ".part")


# ------------------------------------------------------------------------------------------ hashing
def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(CHUNK)
            if not block:
                break
            digest.update(block)
            if progress is not None:
                progress(len(block))
    return digest.hexdigest()


def human_size(n: int) -> str:
    if n <= 0:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1000
    return f"{size:.2f} GB"


def check_file(entry: ModelFile, models_root: Path, show_progress: bool = False) -> tuple[str, Path | None, str]:
    """Hash an installed file: ``(state, path, detail)`` with state ``missing`` | ``ok`` | ``bad`` |
    ``unverified`` (the manifest has no sha256 to compare with). Any candidate (name or alias) that
    matches counts; ``bad`` names the first one that did not."""
    found = candidate_paths(entry, models_root)
    if not found:
        return "missing", None, f"not found under {Path(models_root) / entry.folder}"
    if not entry.sha256:
        return "unverified", found[0], "present; the manifest has no sha256 for it, so it cannot be checked"
    first_bad = None
    for path in found:
        bar = _bar(path.stat().st_size, 0, f"hashing {path.name}", show_progress)
        try:
            got = sha256_file(path, bar.update if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
        if got == entry.sha256:
            return "ok", path, "sha256 matches"
        first_bad = first_bad or (path, got)
    path, got = first_bad
    return "bad", path, f"sha256 is {got}, expected {entry.sha256}"


# ----------------------------------------------------------------------------------------- download
def _bar(total: int, initial: int, desc: str, show: bool):
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total or None, initial=initial, desc=desc, unit="B", unit_scale=True,
                unit_divisor=1024, file=sys.stderr, leave=True, dynamic_ncols=True)


def _http_error_message(entry: ModelFile, err: urllib.error.HTTPError) -> str:
    hint = {
        404: "the file is not at that address (moved or renamed upstream); check docs/models.md "
             "for the source page and download it by hand",
        401: "the server wants a login or token; download it by hand from the source page",
        403: "the server refused access; it may need a login, a licence acceptance or a token",
        429: "the server is rate-limiting; wait a while and run the command again",
    }.get(err.code, "run the command again later; a server error is usually temporary"
          if err.code >= 500 else "the server refused the request")
    return f"{entry.id}: HTTP {err.code} {err.reason} from {entry.url} - {hint}. Nothing was installed."


def _open(entry: ModelFile, offset: int, timeout: float):
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(entry.url, headers=headers)
    return urllib.request.urlopen(request, timeout=timeout)


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-999/1000"
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def _fetch_into_part(entry: ModelFile, part: Path, timeout: float, show_progress: bool,
                     progress: Callable[[int], None] | None, log: Callable[[str], None]) -> str:
    """Bring ``part`` to the complete file (resuming what is there) and return its sha256."""
    offset = part.stat().st_size if part.exists() else 0
    if entry.size and offset > entry.size:
        log(f"{entry.id}: {part.name} is larger than the published size; starting over")
        part.unlink()
        offset = 0
    if entry.size and offset == entry.size:
        return sha256_file(part)  # a previous run got every byte but stopped before verifying

    try:
        response = _open(entry, offset, timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            # Range not satisfiable: the part may already be complete; the hash decides.
            err.close()
            return sha256_file(part)
        err.close()
        raise DownloadError(_http_error_message(entry, err)) from None
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(
            f"{entry.id}: could not connect to {entry.url} ({reason}). Check the network or proxy "
            "and run the command again." + (" The partial download is kept and will resume." if offset else ""),
            resumable=True,
        ) from None

    with response:
        status = getattr(response, "status", 200)
        content_type = (response.headers.get("Content-Type") or "").lower()
        if content_type.startswith("text/html") and not entry.filename.endswith((".html", ".htm")):
            raise DownloadError(
                f"{entry.id}: {entry.url} answered with a web page, not the file (often a login or "
                "licence page). Download it by hand from the source page. Nothing was installed."
            )
        if status == 206 and offset:
            start = _content_range_start(response.headers.get("Content-Range"))
            if start != offset:
                log(f"{entry.id}: the server resumed at the wrong position; starting over")
                response.close()
                part.unlink()
                return _fetch_into_part(entry, part, timeout, show_progress, progress, log)
            mode = "ab"
        else:
            if offset:
                log(f"{entry.id}: the server does not support resuming (HTTP {status}); starting over")
            offset = 0
            mode = "wb"
        part.parent.mkdir(parents=True, exist_ok=True)  # only now: a 404 leaves no empty folders behind
        length = response.headers.get("Content-Length")
        remaining = int(length) if length and length.isdigit() else None
        total = offset + remaining if remaining is not None else (entry.size or 0)
        _check_space(part.parent, (total or 0) - offset, entry)

        digest = hashlib.sha256()
        if offset:
            with open(part, "rb") as f:
                for block in iter(lambda: f.read(CHUNK), b""):
                    digest.update(block)
        received = 0
        bar = _bar(total, offset, entry.filename.split("/")[-1], show_progress)
        try:
            with open(part, mode) as out:
                while True:
                    try:
                        block = response.read(CHUNK)
                    except http.client.IncompleteRead as err:
                        out.write(err.partial)
                        digest.update(err.partial)
                        received += len(err.partial)
                        block = b""
                        remaining = remaining if remaining is not None else received + 1
                    except (socket.timeout, TimeoutError) as err:
                        out.flush()
                        raise DownloadError(
                            f"{entry.id}: the server stopped sending for {timeout:g} s after "
                            f"{human_size(offset + received)} ({err}). The partial download is kept in "
                            f"{part.name}; run the command again to resume. Nothing was installed.",
                            resumable=True,
                        ) from None
                    except (ConnectionError, OSError) as err:
                        out.flush()
                        raise DownloadError(
                            f"{entry.id}: the connection broke after {human_size(offset + received)} ({err}). "
                            f"The partial download is kept in {part.name}; run the command again to resume. "
                            "Nothing was installed.",
                            resumable=True,
                        ) from None
                    if not block:
                        break
                    out.write(block)
                    digest.update(block)
                    received += len(block)
                    if bar is not None:
                        bar.update(len(block))
                    if progress is not None:
                        progress(len(block))
                out.flush()
                os.fsync(out.fileno())
        finally:
            if bar is not None:
                bar.close()
        if remaining is not None and received < remaining:
            raise DownloadError(
                f"{entry.id}: the connection was cut after {offset + received} of {offset + remaining} bytes. "
                f"The partial download is kept in {part.name}; run the command again to resume. "
                "Nothing was installed.",
                resumable=True,
            )
    return digest.hexdigest()


def _check_space(folder: Path, needed: int, entry: ModelFile) -> None:
    if needed <= 0:
        return
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DownloadError(
            f"{entry.id}: needs {human_size(needed)} but only {human_size(free)} is free in {folder}. "
            "Free some space and run the command again."
        )


def download(entry: ModelFile, models_root: Path, *, force: bool = False, allow_unverified: bool = False,
             timeout: float = 60.0, retries: int = 0, show_progress: bool | None = None,
             progress: Callable[[int], None] | None = None,
             log: Callable[[str], None] | None = None) -> Outcome:
    """Install one manifest file under ``models_root`` (see the module docstring for the rules)."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if show_progress is None:
        show_progress = os.environ.get("I2P_QUIET") != "1" and sys.stderr.isatty()
    final = target_path(entry, models_root)

    if not entry.sha256 and not allow_unverified:
        return Outcome(entry.id, final, "refused",
                       f"{entry.id}: the manifest has no published sha256 for {entry.filename}, so the download "
                       "could not be verified. Re-run with --allow-unverified to fetch it anyway (at your own "
                       "risk), or place the file by hand.")

    if candidate_paths(entry, models_root):
        state, present, detail = check_file(entry, models_root, show_progress)
        if state == "ok":
            return Outcome(entry.id, present, "present", f"{entry.id}: already installed, sha256 ok ({present})")
        if state == "unverified":
            return Outcome(entry.id, present, "present",
                           f"{entry.id}: already present at {present} (no sha256 in the manifest to check it)")
        if final.exists() and not force:
            return Outcome(entry.id, final, "present-bad",
                           f"{entry.id}: {final} exists but its {detail}. It was left untouched; "
                           "re-run with --force to replace it with a verified download.")
        if final.exists():
            log(f"{entry.id}: {final} has the wrong sha256; downloading a replacement (--force)")
        else:  # only an alias name is taken, by some other file: leave it, install under the manifest name
            log(f"{entry.id}: {present} is a different file ({detail}); leaving it alone and installing {final}")

    part = part_path(final)
    attempt = 0
    while True:
        try:
            digest = _fetch_into_part(entry, part, timeout, show_progress, progress, log)
            break
        except DownloadError as err:
            if attempt < retries and err.resumable:
                attempt += 1
                log(f"{err}\n{entry.id}: resuming (retry {attempt} of {retries})")
                continue
            return Outcome(entry.id, final, "failed", str(err))

    if entry.sha256 and digest != entry.sha256:
        part.unlink(missing_ok=True)
        return Outcome(entry.id, final, "failed",
                       f"{entry.id}: sha256 mismatch for {entry.url}: got {digest}, expected {entry.sha256}. "
                       "The downloaded bytes were deleted and nothing was installed; the server may be "
                       "serving a different file (check docs/models.md) or the transfer was corrupted.")
    size = part.stat().st_size
    if entry.size and size != entry.size and not entry.sha256:
        part.unlink(missing_ok=True)
        return Outcome(entry.id, final, "failed",
                       f"{entry.id}: got {size} bytes, the manifest says {entry.size}; nothing was installed.")
    os.replace(part, final)
    note = "" if entry.sha256 else " WARNING: not verified (the manifest has no sha256 for it)."
    return Outcome(entry.id, final, "downloaded",
                   f"{entry.id}: installed {final} ({human_size(size)}, sha256 {digest[:12]}...).{note}")


def download_many(entries: Iterable[ModelFile], models_root: Path, **kwargs) -> list[Outcome]:
    return [download(e, models_root, **kwargs) for e in entries]
