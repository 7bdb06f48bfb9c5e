"""``python -m ip_to_portrait run``: run a workflow through ComfyUI's HTTP queue API.

One job (``--reference`` + ``--face``), ``--count`` variations of it (seeds S, S+1, ...), or a batch
(``--batch`` folder or CSV) spread over one or more ``--server`` URLs. With ``--comfyui PATH`` and no
``--server`` a private ComfyUI is started for the run and stopped afterwards. With ``--broker`` the jobs
go to a Redis queue instead, served by ``worker`` processes (one per ComfyUI server; queue_worker.py).
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

from ..core import comfy_adapter
from .batch import BatchInputError, load_jobs, run_batch
from .comfy_client import ComfyClient, ComfyError, ServerLost
from .queue_store import QueueError
from .runner import OK, Job, write_summary
from .workflow_format import WorkflowFormatError
from .workflow_io import bundled_names, face_count, load_workflow

DEFAULT_SERVER = "http://127.0.0.1:8188"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="run a workflow through ComfyUI's queue API",
        description="Upload the photos, fill them into an API-format workflow, queue it on ComfyUI, "
                    "follow its progress and download the results. Bundled workflows: "
                    + (", ".join(bundled_names()) or "none"))
    p.add_argument("--workflow", required=True, help="a bundled workflow name or a workflow JSON file "
                   "(API format; UI format is converted with the server's /object_info)")
    p.add_argument("--reference", type=Path, help="the reference photo (background, pose, light)")
    p.add_argument("--face", type=Path, action="append", default=[],
                   help="a face photo; give it twice for a couple workflow (face 1, face 2)")
    p.add_argument("--batch", type=Path, help="a folder (<job>/reference.jpg + <job>/face.jpg, or "
                   "<job>_reference.jpg + <job>_face.jpg) or a CSV with columns reference,face[,face2][,name][,seed]")
    p.add_argument("--count", type=int, default=1, help="results per job, with seeds S, S+1, ...")
    p.add_argument("--seed", type=int, help="seed of the first result (random when left out)")
    p.add_argument("--out", type=Path, required=True, help="folder for the results and summary.json")
    p.add_argument("--server", action="append", default=[],
                   help=f"ComfyUI URL; repeat to spread a batch over several servers (default {DEFAULT_SERVER})")
    p.add_argument("--comfyui", type=Path, help="a ComfyUI folder: start a private server on a free "
                   "loopback port for this run (used when no --server is given)")
    p.add_argument("--comfyui-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for the private ComfyUI, e.g. --comfyui-arg=--cpu (repeatable)")
    p.add_argument("--comfyui-python", help="interpreter for the private ComfyUI (default: its venv)")
    p.add_argument("--previews", action="store_true",
                   help="save the live preview frames (and preview images) under OUT/previews")
    p.add_argument("--retries", type=int, default=2, help="times a job moves to another server after its server is lost (default 2)")
    p.add_argument("--broker", help="Redis URL (redis://HOST:6379/0): queue the jobs for the workers started with "
                   "'worker' instead of running them from here; needs the [queue] extra")
    p.add_argument("--batch-id", help="with --broker: the batch's name (default: derived from the jobs, so the "
                   "same command resumes the same batch)")
    p.add_argument("--wait", type=float, help="with --broker: stop following after this many seconds (the jobs "
                   "stay queued; fetch them later with 'collect')")
    p.add_argument("--per-server", type=int, default=2, help="jobs of ours queued on one server at a time (default 2)")
    p.add_argument("--verbose", action="store_true", help="print ComfyUI's tracebacks of failed nodes")
    p.set_defaults(func=main)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_jobs(args) -> list[Job]:
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    if args.seed is None:
        _log(f"seed: {seed}")
    if args.batch:
        if args.reference or args.face:
            raise BatchInputError("give either --batch or --reference/--face, not both")
        return load_jobs(args.batch, args.count, seed)
    if not args.reference or not args.face:
        raise BatchInputError("give --reference and at least one --face (or --batch)")
    for f in [args.reference, *args.face]:
        if not f.is_file():
            raise BatchInputError(f"{f} does not exist")
    stem = args.reference.stem
    if args.count <= 1:
        return [Job(stem, args.reference, list(args.face), seed)]
    return [Job(f"{stem}_{i + 1:02d}", args.reference, list(args.face), seed + i) for i in range(args.count)]


def faces_mismatch(args, workflow: dict, jobs: list[Job]) -> bool:
    wanted = face_count(workflow)
    for job in jobs:
        if len(job.faces) != wanted:
            _log(f"job '{job.name}': workflow '{args.workflow}' takes {wanted} face photo(s), "
                 f"the job has {len(job.faces)}")
            return True
    return False


def execute_queued(args) -> int:
    """--broker: the workers run the jobs; a --server, when given, only converts a UI-format workflow."""
    from .queue_client import run_queued

    if args.previews:
        raise BatchInputError("--previews is not available with --broker")
    workflow = load_workflow(args.workflow, ComfyClient(args.server[0]).object_info if args.server else None)
    jobs = build_jobs(args)
    if faces_mismatch(args, workflow, jobs):
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    return run_queued(args, workflow, jobs, _log)


def execute(args, servers: list[str]) -> int:
    clients = [ComfyClient(url) for url in servers]
    live = [c for c in clients if c.alive()]
    if not live:
        home = comfy_adapter.comfyui_home()
        _log("no ComfyUI answers at " + ", ".join(c.url for c in clients)
             + f" (start one, or pass --comfyui {home or 'PATH'} to start a private one)")
        return 2
    workflow = load_workflow(args.workflow, live[0].object_info)
    jobs = build_jobs(args)
    if faces_mismatch(args, workflow, jobs):
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    single = len(jobs) == 1 and len(clients) == 1
    results = run_batch(jobs, clients, workflow, args.out, retries=args.retries, per_server=args.per_server,
                        previews=args.previews, verbose=args.verbose, log=_log)
    if single and results and results[0].status == OK:
        for f in results[0].outputs:
            print(f)
    write_summary(results, args.out, log=_log)
    return 0 if results and all(r.status == OK for r in results) else 1


def main(args) -> int:
    try:
        if args.broker:
            return execute_queued(args)
        if args.server or not args.comfyui:
            return execute(args, args.server or [DEFAULT_SERVER])
        from .local_comfyui import PrivateComfyUI

        extra = list(args.comfyui_arg)
        if args.previews and not any(a.startswith("--preview-method") for a in extra):
            extra += ["--preview-method", "auto"]
        with PrivateComfyUI(args.comfyui, args.comfyui_python, extra, log=_log) as url:
            return execute(args, [url])
    except (BatchInputError, WorkflowFormatError, QueueError) as exc:
        _log(f"error: {exc}")
        return 2
    except (ServerLost, ComfyError) as exc:
        _log(f"error: {exc}")
        return 1
