"""``python -m ip_to_portrait portrait``: from two photos to a portrait in one command.

Finds or installs a ComfyUI (cli/comfyui_home.py), makes sure the workflow's model files are there
(cli/portrait_models.py; one question, ``--yes`` for scripts), starts a private ComfyUI on a free
loopback port, runs the workflow, saves the result(s), prints their paths, the identity score and the
licences of the model files used, and stops the server.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

from ..models import download as dl
from ..models.workflow_models import models_for_prompt
from .comfy_client import ComfyClient, ComfyError, ServerLost
from .comfyui_home import ComfyUINotFound, find_comfyui, install_private, link_pack, private_comfyui
from .local_comfyui import PrivateComfyUI, detect_gpu
from .portrait_models import ModelsNotReady, ensure_models, with_sources
from .runner import OK, Job, run_job, write_summary
from .workflow_format import WorkflowFormatError
from .workflow_io import face_count, load_workflow

GPU_WORKFLOW, CPU_WORKFLOW = "recommended_portrait", "fast_swap"
SCORE_NODE = "I2PIdentityScore"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "portrait", help="one command from two photos to a portrait (sets up ComfyUI and models if needed)",
        description="Put the face of --face into the photo --reference. Uses --comfyui, $COMFYUI_PATH, the "
                    "ComfyUI this pack is installed in, or a private ComfyUI in the per-user folder (installed "
                    "with comfy-cli the first time); downloads the models the workflow needs after one question.")
    p.add_argument("--reference", type=Path, required=True, help="the photo to keep (background, pose, light)")
    p.add_argument("--face", type=Path, action="append", required=True,
                   help="the face photo; give it twice for couple_photo (face 1, face 2)")
    p.add_argument("--out", type=Path, required=True, help="folder for the result(s) and summary.json")
    p.add_argument("--workflow", help=f"a bundled workflow or an API-format file (default: {GPU_WORKFLOW} "
                   f"with a GPU, {CPU_WORKFLOW} without one)")
    p.add_argument("--comfyui", type=Path, help="use this ComfyUI folder")
    p.add_argument("--comfyui-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for the private ComfyUI server (repeatable)")
    p.add_argument("--comfyui-python", help="interpreter for that ComfyUI (default: its venv, else this one)")
    p.add_argument("--yes", action="store_true", help="download missing models without asking (for scripts)")
    p.add_argument("--seed", type=int, help="seed (random when left out)")
    p.add_argument("--verbose", action="store_true", help="print ComfyUI's tracebacks of failed nodes")
    p.set_defaults(func=main)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def choose_workflow(explicit: str | None, gpu: str | None) -> str:
    if explicit:
        return explicit
    if gpu:
        _log(f"GPU found ({gpu}): using {GPU_WORKFLOW}.")
        return GPU_WORKFLOW
    _log(f"No GPU found (no nvidia-smi, rocm-smi or Apple silicon): using {CPU_WORKFLOW}, a face swap and "
         f"restore that takes seconds on a CPU. {GPU_WORKFLOW} inpaints the face with SDXL, which needs "
         f"14-19 GB of RAM and tens of minutes on a CPU; pass --workflow {GPU_WORKFLOW} to run it anyway.")
    return CPU_WORKFLOW


def licence_summary(needed) -> str:
    """The licences of the model files a workflow used, non-commercial ones first."""
    by_licence: dict[tuple[bool, str, str], list[str]] = {}
    for m in needed:
        name = m.group or m.filename.split("/")[-1]
        names = by_licence.setdefault((m.commercial, m.license, m.license_url), [])
        if name not in names:
            names.append(name)
    lines = ["licences of the model files used:"]
    for (commercial, text, url), names in sorted(by_licence.items(), key=lambda kv: kv[0][0]):
        use = "commercial use allowed" if commercial else "NON-COMMERCIAL use only"
        lines.append(f"  {use}: {', '.join(names)} - {text} ({url})")
    blocked = [m.id for m in needed if not m.commercial]
    lines.append("  => this result may NOT be used commercially (docs/models.md, 'Commercial use': the "
                 "commercial_portrait workflow)" if blocked
                 else "  => every model file used allows commercial use")
    return "\n".join(lines)


def identity_score(prompt: dict, texts: dict) -> str:
    nodes = [nid for nid, n in prompt.items() if n.get("class_type") == SCORE_NODE]
    found = [str(t) for key, items in texts.items() for nid in nodes if key.startswith(f"{nid} ") for t in items]
    return "\n".join(found) if found else "(the workflow has no I2P Identity Score node)"


def _run(args, comfyui: Path, prompt: dict, workflow: str) -> int:
    job = Job(args.reference.stem, args.reference, list(args.face), args.seed)
    with PrivateComfyUI(comfyui, args.comfyui_python, list(args.comfyui_arg), log=_log) as url:
        client = ComfyClient(url)
        known = client.object_info()
        absent = sorted({n["class_type"] for n in prompt.values()} - set(known))
        if absent:
            _log(f"error: the ComfyUI at {comfyui} does not have the node(s) {', '.join(absent)}: the pack is not "
                 f"installed in it. Link it: ln -s <this pack's folder> {comfyui / 'custom_nodes' / 'ip_to_portrait'}")
            return 2
        args.out.mkdir(parents=True, exist_ok=True)
        result = run_job(client, prompt, job, args.out, verbose=args.verbose, log=_log)
    write_summary([result], args.out, log=_log)
    if result.status != OK:
        return 1
    if not result.outputs:
        _log(f"error: {workflow} finished but saved no image")
        return 1
    for path in result.outputs:
        print(path)
    print("identity score (face photo vs result):\n  " + identity_score(prompt, result.texts).replace("\n", "\n  "))
    print(licence_summary(models_for_prompt(prompt)))
    return 0


def main(args) -> int:
    try:
        for photo in [args.reference, *args.face]:
            if not photo.is_file():
                raise WorkflowFormatError(f"{photo} does not exist")
        gpu = detect_gpu()
        workflow = choose_workflow(args.workflow, gpu)
        prompt = load_workflow(workflow)
        if face_count(prompt) != len(args.face):
            raise WorkflowFormatError(f"workflow '{workflow}' takes {face_count(prompt)} face photo(s), "
                                      f"{len(args.face)} given (--face once per face)")
        if args.seed is None:
            args.seed = random.randrange(2**31)
            _log(f"seed: {args.seed}")
        comfyui, how = find_comfyui(args.comfyui)
        if comfyui is None:
            _log("No ComfyUI found: installing a private one (once).")
            comfyui, how = install_private(gpu, log=_log), "the private ComfyUI, just installed"
        elif comfyui == private_comfyui():
            link_pack(comfyui, log=_log)  # ours: keep the pack linked (never done to a ComfyUI of the user's)
        _log(f"ComfyUI: {comfyui} ({how})")
        root = dl.comfyui_models_dir(comfyui)
        needed = with_sources(models_for_prompt(prompt))
        ensure_models(needed, root, assume_yes=args.yes, workflow=workflow, comfyui=comfyui, log=_log)
        return _run(args, comfyui, prompt, workflow)
    except (WorkflowFormatError, ComfyUINotFound, dl.DownloadError) as exc:
        _log(f"error: {exc}")
        return 2
    except ModelsNotReady as exc:
        _log(f"models: {exc}")
        return 1
    except (ServerLost, ComfyError) as exc:
        _log(f"error: {exc}")
        return 1
