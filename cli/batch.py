"""Batch mode: many (reference, face) jobs spread over several ComfyUI servers.

Jobs come from a CSV (columns ``reference,face[,face2][,name][,seed]``, paths relative to the CSV) or
a folder (one sub-folder per job holding ``reference.*`` and ``face.*`` / ``face2.*``, or flat files
named ``<job>_reference.*``, ``<job>_face.*``, ``<job>_face2.*``).

Each job goes to the live server with the shortest queue (``GET /queue``, which counts every client
of that server) at most ``per_server`` of ours at a time. A server that stops answering is set aside
and its job goes back in line, up to ``retries`` times; a set-aside server is probed again later.
"""
from __future__ import annotations

import csv
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable

from .comfy_client import ComfyClient, ServerLost
from .runner import FAILED, LOST, OK, Job, JobResult, run_job

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
FACE_KEYS = ("face", "face1", "face2", "face3", "face4")


class BatchInputError(ValueError):
    pass


def _face_order(key: str) -> int:
    return 1 if key in ("face", "face1") else int(key[4:])


def jobs_from_csv(path: Path, count: int = 1, seed: int | None = None) -> list[Job]:
    base = path.parent
    jobs = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        if "reference" not in fields or not ({"face", "face1"} & set(fields)):
            raise BatchInputError(f"{path}: the header needs 'reference' and 'face' columns, got {fields}")
        for row_no, raw in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
            if not row.get("reference"):
                continue
            faces = [base / row[k] for k in sorted((k for k in FACE_KEYS if row.get(k)), key=_face_order)]
            name = row.get("name") or f"row{row_no - 1:03d}"
            row_seed = int(row["seed"]) if row.get("seed") else seed
            jobs += _expand(name, base / row["reference"], faces, row_seed, count)
    return _check(jobs, path)


def jobs_from_folder(path: Path, count: int = 1, seed: int | None = None) -> list[Job]:
    groups: dict[str, dict[str, Path]] = {}
    for sub in sorted(p for p in path.iterdir() if p.is_dir()):
        for f in sub.iterdir():
            if f.suffix.lower() in IMAGE_SUFFIXES and f.stem.lower() in ("reference", *FACE_KEYS):
                groups.setdefault(sub.name, {})[f.stem.lower()] = f
    for f in sorted(path.iterdir()):
        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and "_" in f.stem:
            job, role = f.stem.rsplit("_", 1)
            if role.lower() in ("reference", *FACE_KEYS):
                groups.setdefault(job, {})[role.lower()] = f
    jobs = []
    for name, files in sorted(groups.items()):
        if "reference" not in files:
            raise BatchInputError(f"{path}: job '{name}' has no reference image")
        faces = [files[k] for k in sorted((k for k in files if k != "reference"), key=_face_order)]
        jobs += _expand(name, files["reference"], faces, seed, count)
    if not jobs:
        raise BatchInputError(f"{path}: no jobs found (expected <job>/reference.jpg + <job>/face.jpg, "
                              "or <job>_reference.jpg + <job>_face.jpg)")
    return _check(jobs, path)


def _expand(name: str, reference: Path, faces: list[Path], seed: int | None, count: int) -> list[Job]:
    if count <= 1:
        return [Job(name, reference, faces, seed)]
    return [Job(f"{name}_{i + 1:02d}", reference, faces, None if seed is None else seed + i) for i in range(count)]


def _check(jobs: list[Job], source: Path) -> list[Job]:
    for job in jobs:
        for f in [job.reference, *job.faces]:
            if not f.is_file():
                raise BatchInputError(f"{source}: job '{job.name}': {f} does not exist")
        if not job.faces:
            raise BatchInputError(f"{source}: job '{job.name}' has no face image")
    return jobs


def load_jobs(path: Path, count: int = 1, seed: int | None = None) -> list[Job]:
    if path.is_dir():
        return jobs_from_folder(path, count, seed)
    if path.suffix.lower() == ".csv":
        return jobs_from_csv(path, count, seed)
    raise BatchInputError(f"--batch takes a folder or a .csv file, not {path}")


class ServerPool:
    """Which server gets the next job."""

    def __init__(self, clients: list[ComfyClient], per_server: int = 2, reprobe_after: float = 20.0):
        self.clients = clients
        self.per_server = per_server
        self.reprobe_after = reprobe_after
        self.inflight = {c.url: 0 for c in clients}
        self.lost_at: dict[str, float] = {}
        self.lock = threading.Lock()

    def alive(self) -> list[ComfyClient]:
        return [c for c in self.clients if c.url not in self.lost_at]

    def mark_lost(self, client: ComfyClient) -> None:
        with self.lock:
            self.lost_at[client.url] = time.monotonic()

    def _reprobe(self) -> None:
        now = time.monotonic()
        for c in self.clients:
            since = self.lost_at.get(c.url)
            if since is not None and now - since > self.reprobe_after:
                if c.alive(timeout=2):
                    self.lost_at.pop(c.url, None)
                else:
                    self.lost_at[c.url] = now

    def pick(self) -> ComfyClient | None:
        """The live server with the shortest queue that has room for one more of our jobs."""
        self._reprobe()
        best, best_load = None, None
        for c in self.alive():
            if self.inflight[c.url] >= self.per_server:
                continue
            try:
                load = max(c.queue_length(), self.inflight[c.url])
            except ServerLost:
                self.mark_lost(c)
                continue
            if best_load is None or load < best_load:
                best, best_load = c, load
        if best is not None:
            with self.lock:
                self.inflight[best.url] += 1
        return best

    def release(self, client: ComfyClient) -> None:
        with self.lock:
            self.inflight[client.url] -= 1


def run_batch(jobs: list[Job], clients: list[ComfyClient], workflow: dict, out_dir: Path, *,
              retries: int = 2, per_server: int = 2, previews: bool = False, verbose: bool = False,
              log: Callable[[str], None] = print, progress: bool = True,
              reprobe_after: float = 20.0) -> list[JobResult]:
    pool = ServerPool(clients, per_server, reprobe_after)
    pending = list(jobs)
    attempts: dict[str, int] = {}
    results: dict[str, JobResult] = {}
    running: dict[Future, tuple[Job, ComfyClient]] = {}
    submitted: dict[str, tuple[ComfyClient, str]] = {}  # job -> (server, prompt id) while it runs
    cancel = threading.Event()
    single = len(jobs) == 1  # one job: a bar over its nodes instead of a bar over jobs
    bar = None
    if progress and not single:
        from .runner import quiet

        if not quiet():
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), desc="jobs", unit="job")
    executor = ThreadPoolExecutor(max_workers=max(1, len(clients) * per_server))
    try:
        while pending or running:
            while pending:
                client = pool.pick()
                if client is None:
                    break
                job = pending.pop(0)
                attempts[job.name] = attempts.get(job.name, 0) + 1
                fut = executor.submit(run_job, client, workflow, job, out_dir, previews=previews,
                                      progress=progress and single, verbose=verbose, log=log, cancel=cancel,
                                      on_submitted=_remember(submitted, job.name, client))
                running[fut] = (job, client)
            if not running:
                if pending and not pool.alive() and not _wait_for_any(pool):
                    for job in pending:
                        results[job.name] = JobResult(job.name, FAILED, message="no ComfyUI server left",
                                                      attempts=attempts.get(job.name, 0))
                    pending.clear()
                    break
                time.sleep(0.2)
                continue
            done, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
            for fut in done:
                job, client = running.pop(fut)
                submitted.pop(job.name, None)
                pool.release(client)
                result = fut.result()
                result.attempts = attempts[job.name]
                if result.status == LOST:
                    pool.mark_lost(client)
                    log(f"[{job.name}] {result.message}")
                    if attempts[job.name] <= retries:
                        log(f"[{job.name}] retrying on another server ({attempts[job.name]}/{retries})")
                        pending.insert(0, job)
                        continue
                results[job.name] = result
                if result.status == OK and not single:
                    log(f"[{job.name}] done on {client.url} in {result.seconds:.1f} s: {result.message}")
                if bar is not None:
                    bar.update(1)
    except KeyboardInterrupt:
        # Ctrl-C: take our queued prompts off their servers and interrupt the running ones
        cancel.set()
        for client, prompt_id in list(submitted.values()):
            try:
                client.delete_queued([prompt_id])
                client.interrupt(prompt_id)
            except ServerLost:
                pass
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    return [results[j.name] for j in jobs if j.name in results]


def _wait_for_any(pool: ServerPool, seconds: float | None = None) -> bool:
    """Every server is lost: give them one re-probe window before failing the rest."""
    deadline = time.monotonic() + (seconds if seconds is not None else pool.reprobe_after + 1)
    while time.monotonic() < deadline:
        for c in pool.clients:
            if c.alive(timeout=2):
                pool.lost_at.pop(c.url, None)
                return True
        time.sleep(1.0)
    return False


def _remember(submitted: dict, name: str, client: ComfyClient):
    def note(prompt_id: str) -> None:
        submitted[name] = (client, prompt_id)
    return note
