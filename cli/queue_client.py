"""The client side of the queue: :func:`submit`, :func:`status`, :func:`collect` (a small Python API for
a web page or a script) and the ``status`` / ``collect`` sub-commands; ``run --broker`` uses them too.

A batch is known by its id. The id is derived from the jobs (photos, workflow, names, seeds), so running
the same command again finds the same batch: jobs already done are skipped, jobs still queued or
running are followed, failed ones are queued again (resume).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

from .queue_store import QueueError, Store, batch_id_for
from .queue_worker import client_app, publish
from .runner import OK, Job, JobResult, quiet, write_summary

#: states of a job that has no result yet
QUEUED, RUNNING = "queued", "running"


def submit(broker: str, workflow: dict, jobs: list[Job], *, retries: int = 2, batch_id: str | None = None) -> str:
    """Queue the jobs (one per ``Job``; a workflow in API format) and return the batch id.

    Jobs of that batch that are done, queued or running are left alone; failed ones are queued again."""
    store = Store(broker)
    store.ping()
    app = client_app(broker)
    workflow_digest = store.put_blob(json.dumps(workflow, sort_keys=True).encode())

    def photo(path: Path) -> dict:
        return {"sha": store.put_blob(Path(path).read_bytes()), "name": Path(path).name}

    specs = [{"name": j.name, "reference": photo(j.reference), "faces": [photo(f) for f in j.faces], "seed": j.seed}
             for j in jobs]
    batch = batch_id or batch_id_for(workflow_digest, specs)
    known, results = store.jobs(batch), store.results(batch)
    for spec in specs:
        done = results.get(spec["name"])
        if done is not None and done["status"] == OK:
            continue
        if spec["name"] in known and done is None:
            continue  # queued or running already
        spec.update(batch=batch, workflow=workflow_digest, retries=retries, attempts=0, tried=[],
                    queued_at=time.time())
        store.add_job(batch, spec["name"], spec)  # first: a fast worker must find the job recorded
        publish(app, spec)
    return batch


def status(broker: str, batch: str) -> dict[str, dict]:
    """Every job of the batch: its result record, or ``{"status": "queued" | "running", "message": ...}``."""
    store = Store(broker)
    store.ping()
    jobs = store.jobs(batch)
    if not jobs:
        raise QueueError(f"no batch '{batch}' in Redis at {broker} (unknown, or expired)")
    results, states = store.results(batch), store.states(batch)
    out = {}
    for name in sorted(jobs):
        if name in results:
            out[name] = results[name]
        elif name in states:
            out[name] = {"job": name, "status": RUNNING, "message": states[name]}
        else:
            out[name] = {"job": name, "status": QUEUED, "message": "waiting for a worker"}
    return out


def collect(broker: str, batch: str, out_dir: Path) -> list[JobResult]:
    """Write the finished jobs' images to ``out_dir`` (no half-written file) and return every job's
    result; jobs without a result yet come back with status queued / running."""
    store = Store(broker)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for name, record in status(broker, batch).items():
        paths = []
        for file_name in record.get("outputs", []):
            data = store.file(batch, file_name)
            if data is None:
                raise QueueError(f"batch '{batch}': the image {file_name} of job '{name}' has expired from Redis")
            target = out_dir / file_name
            tmp = target.with_suffix(target.suffix + ".part")
            tmp.write_bytes(data)
            tmp.replace(target)
            paths.append(str(target))
        fields = {k: record[k] for k in JobResult.__dataclass_fields__ if k in record}
        results.append(JobResult(**{**fields, "outputs": paths}))
    return results


def follow(broker: str, batch: str, names: list[str], *, timeout: float | None = None, poll: float = 0.5,
           log: Callable[[str], None] = print) -> bool:
    """Wait until every named job has a result, with a progress bar over jobs; False on timeout."""
    store = Store(broker, patience=600)
    bar = None
    if not quiet():
        from tqdm import tqdm

        bar = tqdm(total=len(names), desc=f"batch {batch}", unit="job", file=sys.stderr)
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: set[str] = set()
    say = (lambda m: bar.write(m, file=sys.stderr)) if bar is not None else log
    try:
        while True:
            results = store.results(batch)
            for name in names:
                if name in results and name not in seen:
                    seen.add(name)
                    r = results[name]
                    first = r.get("message", "").splitlines()[0] if r.get("message") else ""
                    say(f"[{name}] {r['status']} on {r.get('server', '?')}: {first}")
                    if bar is not None:
                        bar.update(1)
            if len(seen) == len(names):
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(poll)
    finally:
        if bar is not None:
            bar.close()


def run_queued(args, workflow: dict, jobs: list[Job], log: Callable[[str], None]) -> int:
    """``run --broker``: submit, follow, collect into ``--out``."""
    batch = submit(args.broker, workflow, jobs, retries=args.retries, batch_id=args.batch_id)
    log(f"batch {batch}: {len(jobs)} job(s) queued at {args.broker} "
        f"(see it from another shell with: status {batch} --broker {args.broker})")
    finished = follow(args.broker, batch, [j.name for j in jobs], timeout=args.wait, log=log)
    results = [r for r in collect(args.broker, batch, args.out) if r.job in {j.name for j in jobs}]
    write_summary(results, args.out, log=log)
    if not finished:
        log(f"stopped waiting after {args.wait:g} s; the jobs stay queued: collect {batch} --out DIR later")
        return 3
    if len(results) == 1 and results[0].status == OK:
        for f in results[0].outputs:
            print(f)
    return 0 if all(r.status == OK for r in results) else 1


# ------------------------------------------------------------------------------------ sub-commands
def _broker_arg(p) -> None:
    default = os.environ.get("I2P_BROKER")
    p.add_argument("--broker", default=default, required=default is None,
                   help="Redis URL, e.g. redis://HOST:6379/0 (default: $I2P_BROKER)")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("status", help="show the jobs of a queued batch",
                              description="One line per job of a batch submitted with run --broker.")
    p.add_argument("batch", help="the batch id printed by run --broker")
    _broker_arg(p)
    p.set_defaults(func=status_main)
    p = subparsers.add_parser("collect", help="fetch the results of a queued batch",
                              description="Write the result images of a batch and its summary.json to a folder.")
    p.add_argument("batch", help="the batch id printed by run --broker")
    p.add_argument("--out", type=Path, required=True, help="folder for the images and summary.json")
    _broker_arg(p)
    p.set_defaults(func=collect_main)


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def status_main(args) -> int:
    try:
        jobs = status(args.broker, args.batch)
    except QueueError as exc:
        _err(f"error: {exc}")
        return 2
    width = max(len(n) for n in jobs)
    counts: dict[str, int] = {}
    for name, r in jobs.items():
        counts[r["status"]] = counts.get(r["status"], 0) + 1
        first = r.get("message", "").splitlines()[0] if r.get("message") else ""
        print(f"{name:<{width}}  {r['status']:<11} {r.get('server', ''):<28} {first}")
    print(f"batch {args.batch}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + f" of {len(jobs)}")
    return 0


def collect_main(args) -> int:
    try:
        results = collect(args.broker, args.batch, args.out)
    except QueueError as exc:
        _err(f"error: {exc}")
        return 2
    write_summary(results, args.out, log=_err)
    return 0 if all(r.status == OK for r in results) else 1
