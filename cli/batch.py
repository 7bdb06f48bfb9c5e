"""Batch mode: many (reference, face) jobs spread over several ComfyUI servers.

Jobs come from a CSV (columns ``reference,face[,face2][,name][,seed]``, paths relative to the CSV) or
a folder (one sub-folder per job holding ``reference.*`` and ``face.*`` / ``face2.*``, or flat files
named ``<job>_reference.*``, ``<job>_face.*``, ``<job>_face2.*``).

Without a broker, each server gets ``per_server`` threads that take jobs from one shared line, so a
faster server takes more. A server that stops answering gets no more jobs in this run, and its job
goes back in line for another server, up to ``retries`` times; with no server left the rest fail.
Several users sharing servers, resuming, and servers that come back are the queue's business
(``run --broker``, queue_worker.py), not this module's.
"""
from __future__ import annotations

import csv
import queue
import threading
from pathlib import Path
from typing import Callable

from .comfy_client import ComfyClient, ServerLost
from .runner import FAILED, LOST, OK, Job, JobResult, quiet, run_job

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


def run_batch(jobs: list[Job], clients: list[ComfyClient], workflow: dict, out_dir: Path, *,
              retries: int = 2, per_server: int = 2, previews: bool = False, verbose: bool = False,
              log: Callable[[str], None] = print, progress: bool = True) -> list[JobResult]:
    line: queue.Queue[Job] = queue.Queue()
    for job in jobs:
        line.put(job)
    attempts: dict[str, int] = {}
    results: dict[str, JobResult] = {}
    lost: set[str] = set()
    submitted: dict[str, tuple[ComfyClient, str]] = {}  # job -> (server, prompt id) while it runs
    lock = threading.Lock()
    cancel = threading.Event()
    single = len(jobs) == 1  # one job: a bar over its nodes instead of a bar over jobs
    bar = None
    if progress and not single and not quiet():
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="jobs", unit="job")

    def serve(client: ComfyClient) -> None:
        while not cancel.is_set() and client.url not in lost and len(results) < len(jobs):
            try:
                job = line.get(timeout=0.2)
            except queue.Empty:
                continue  # a job may still come back from a lost server
            with lock:
                attempts[job.name] = attempts.get(job.name, 0) + 1
            result = run_job(client, workflow, job, out_dir, previews=previews, progress=progress and single,
                             verbose=verbose, log=log, cancel=cancel, on_submitted=_remember(submitted, job.name, client))
            submitted.pop(job.name, None)
            result.attempts = attempts[job.name]
            if result.status == LOST:
                lost.add(client.url)
                log(f"[{job.name}] {result.message}")
                if result.attempts <= retries:
                    log(f"[{job.name}] retrying on another server ({result.attempts}/{retries})")
                    line.put(job)
                    return
            with lock:
                results[job.name] = result
            if result.status == OK and not single:
                log(f"[{job.name}] done on {client.url} in {result.seconds:.1f} s: {result.message}")
            if bar is not None:
                bar.update(1)
            if client.url in lost:
                return

    threads = [threading.Thread(target=serve, args=(c,), daemon=True) for c in clients for _ in range(max(1, per_server))]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(timeout=0.5)
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
        if bar is not None:
            bar.close()
    while not line.empty():  # every server was lost before these ran
        job = line.get()
        results[job.name] = JobResult(job.name, FAILED, message="no ComfyUI server left",
                                      attempts=attempts.get(job.name, 0))
    return [results[j.name] for j in jobs if j.name in results]


def _remember(submitted: dict, name: str, client: ComfyClient):
    def note(prompt_id: str) -> None:
        submitted[name] = (client, prompt_id)
    return note
