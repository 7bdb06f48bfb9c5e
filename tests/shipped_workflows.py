"""The bundled workflows as the comfyui tier queues them: the shipped ``workflows/api/*.json`` file,
with nothing changed but the photo inputs and, for CPU speed, the knobs in :data:`CPU_KNOBS`.

One helper (:func:`for_cpu`) applies the knobs, reading every other value from the shipped file, and
one check (:func:`unexpected_changes`) lists anything else that differs; a CI test runs the check on
the helper's output, and the tier runs it on the prompt ComfyUI recorded in its history.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from packload import PACK_ROOT

API = PACK_ROOT / "workflows" / "api"
#: the only widget values the tier may change, with what it sets: 2 sampling steps at 256 px test the
#: graph, not the picture (``steps`` also where the identity node counts stop_at in steps)
CPU_KNOBS = {"steps": 2, "target_size": 256}
#: inputs the run fills with its own photos (the CLI's --reference / --face)
PHOTO_INPUTS = {("LoadImage", "image")}
SEED_INPUTS = ("seed", "noise_seed")


def names() -> list[str]:
    return sorted(p.stem for p in API.glob("*.json"))


def shipped(name: str) -> dict:
    return json.loads((API / f"{name}.json").read_text(encoding="utf-8"))


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def for_cpu(prompt: dict, knobs: dict = CPU_KNOBS) -> dict:
    """A copy of ``prompt`` with each literal input named in ``knobs`` set to the knob's value."""
    out = copy.deepcopy(prompt)
    for node in out.values():
        for key, value in knobs.items():
            if key in node.get("inputs", {}) and not _is_link(node["inputs"][key]):
                node["inputs"][key] = value
    return out


def shipped_seed(prompt: dict) -> int | None:
    """The seed the shipped file carries, so a run that must name a seed (the CLI) keeps it."""
    for node in prompt.values():
        for key in SEED_INPUTS:
            value = node.get("inputs", {}).get(key)
            if value is not None and not _is_link(value):
                return int(value)
    return None


def unexpected_changes(shipped_prompt: dict, run_prompt: dict, allowed: set[str] = frozenset(CPU_KNOBS)) -> list[str]:
    """Every difference between the two prompts other than an ``allowed`` input or a photo input:
    nodes added or removed, class types, inputs added, removed or changed (links included)."""
    out = []
    for nid in sorted(set(shipped_prompt) | set(run_prompt), key=str):
        a, b = shipped_prompt.get(nid), run_prompt.get(nid)
        if a is None or b is None:
            out.append(f"node {nid} {'added' if a is None else 'removed'}")
            continue
        if a.get("class_type") != b.get("class_type"):
            out.append(f"node {nid}: class_type {a.get('class_type')} -> {b.get('class_type')}")
            continue
        ia, ib = a.get("inputs", {}), b.get("inputs", {})
        for key in sorted(set(ia) | set(ib)):
            knob = key in allowed and not _is_link(ia.get(key)) and not _is_link(ib.get(key))
            if knob or (a["class_type"], key) in PHOTO_INPUTS:
                continue
            if key not in ia or key not in ib or ia[key] != ib[key]:
                out.append(f"node {nid} ({a['class_type']}).{key}: {ia.get(key, '<absent>')!r} -> "
                           f"{ib.get(key, '<absent>')!r}")
    return out


#: the graphs whose generator is an instruction-edit DiT (issue 15): the tier also checks that the whole graph
#: leaves the photo untouched outside the face zones (tests/test_edit_model_workflow_comfyui.py)
EDIT_GRAPHS = ("edit_model_portrait", "qwen_edit_portrait")
