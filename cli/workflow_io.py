"""Finding a workflow, and filling a job's images and seed into it.

The convention the CLI relies on (documented in docs/workflows.md): the photos enter through core
``LoadImage`` nodes whose title says what they are. A title starting with "Reference" takes the
reference photo; a title starting with "Face" takes a face photo, numbered by the last number in the
title ("Face photo" = face 1, "Face photo 2" = face 2). A workflow without such titles gets its
LoadImage nodes in ascending node id: reference first, then the faces. Every literal ``seed`` /
``noise_seed`` input receives the job's seed.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Callable

from .workflow_format import WorkflowFormatError, is_api_format, is_link, is_ui_format, ui_to_api

WORKFLOWS_DIR = Path(__file__).resolve().parent.parent / "workflows"
API_DIR = WORKFLOWS_DIR / "api"
IMAGE_LOADERS = ("LoadImage",)
SEED_INPUTS = ("seed", "noise_seed")


def bundled_names() -> list[str]:
    return sorted(p.stem for p in API_DIR.glob("*.json"))


def find_workflow(spec: str) -> Path:
    """A file path, or the name of a bundled workflow ("fast_swap", "fast-swap", "fast_swap.json")."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    name = spec.lower().removesuffix(".json").replace("-", "_").replace(" ", "_")
    candidate = API_DIR / f"{name}.json"
    if candidate.is_file():
        return candidate
    names = ", ".join(bundled_names()) or "(none installed)"
    raise WorkflowFormatError(f"no workflow '{spec}': not a file, and not a bundled workflow ({names})")


def load_workflow(spec: str, object_info: Callable[[], dict] | None = None) -> dict:
    """The API-format prompt of ``spec``. A UI-format file is converted with the server's
    ``/object_info`` (``object_info`` is called only then)."""
    path = find_workflow(spec)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WorkflowFormatError(f"cannot read workflow {path}: {exc}") from None
    if is_api_format(data):
        return data
    if is_ui_format(data):
        if object_info is None:
            raise WorkflowFormatError(f"{path} is a UI-format workflow; use its API-format export")
        return ui_to_api(data, object_info())
    raise WorkflowFormatError(f"{path} is neither an API-format nor a UI-format ComfyUI workflow")


def _title(node: dict) -> str:
    return str((node.get("_meta") or {}).get("title", "")).strip()


def _sort_key(node_id: str):
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def image_slots(prompt: dict) -> dict[str, str]:
    """``{"reference": node_id, "face1": node_id, "face2": ...}`` by the convention above."""
    loaders = sorted((nid for nid, n in prompt.items() if n.get("class_type") in IMAGE_LOADERS), key=_sort_key)
    slots: dict[str, str] = {}
    for nid in loaders:
        title = _title(prompt[nid]).lower()
        if title.startswith("reference"):
            slot = "reference"
        elif title.startswith("face"):
            numbers = re.findall(r"\d+", title)
            slot = f"face{int(numbers[-1]) if numbers else 1}"
        else:
            continue
        if slot in slots:
            raise WorkflowFormatError(f"two LoadImage nodes ({slots[slot]} and {nid}) are titled as '{slot}'")
        slots[slot] = nid
    if not slots and loaders:
        slots["reference"] = loaders[0]
        for i, nid in enumerate(loaders[1:], start=1):
            slots[f"face{i}"] = nid
    return slots


def face_count(prompt: dict) -> int:
    return sum(1 for s in image_slots(prompt) if s.startswith("face"))


def fill(prompt: dict, reference: str, faces: list[str], seed: int | None) -> dict:
    """A copy of ``prompt`` with the uploaded image names and the seed filled in."""
    slots = image_slots(prompt)
    if "reference" not in slots:
        raise WorkflowFormatError("the workflow has no LoadImage node titled 'Reference ...'")
    wanted = sorted((s for s in slots if s.startswith("face")), key=lambda s: int(s[4:]))
    if len(faces) != len(wanted):
        raise WorkflowFormatError(
            f"the workflow takes {len(wanted)} face photo(s) ({', '.join(wanted) or 'none'}) but "
            f"{len(faces)} were given; pass --face once per face")
    out = copy.deepcopy(prompt)
    out[slots["reference"]]["inputs"]["image"] = reference
    for slot, name in zip(wanted, faces):
        out[slots[slot]]["inputs"]["image"] = name
    if seed is not None:
        for node in out.values():
            for key in SEED_INPUTS:
                value = node.get("inputs", {}).get(key)
                if value is not None and not is_link(value):
                    node["inputs"][key] = int(seed)
    return out
