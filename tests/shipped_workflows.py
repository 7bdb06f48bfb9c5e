"""The bundled workflows as the comfyui tier queues them: the shipped ``workflows/api/*.json`` file,
with nothing changed but the photo inputs and, for CPU speed, the knobs in :data:`CPU_KNOBS`.

One helper (:func:`for_cpu`) applies the knobs, reading every other value from the shipped file, and
one check (:func:`unexpected_changes`) lists anything else that differs; a CI test runs the check on
the helper's output, and the tier runs it on the prompt ComfyUI recorded in its history. The edit-model
graphs' results get one more check (:func:`edit_result_problems`): the background is untouched.
"""
from __future__ import annotations

import copy
import json
import re
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


#: the graphs whose generator is an instruction-edit DiT (issue 15): their results are checked for an
#: untouched background (:func:`edit_result_problems`)
EDIT_GRAPHS = ("edit_model_portrait", "qwen_edit_portrait")
EDIT_TARGET_LINE = "appended as reference latent 2 (the edit target) after your 1 reference(s)"


def edit_result_problems(history: dict, output: Path, reference: Path) -> list[str]:
    """What is wrong with an edit graph's saved result (empty: nothing): it must equal the reference photo,
    bit for bit, outside every crop I2P Face Inpaint reports ("crop WxH at (x,y)" in its ui text, read
    back from /history), so after the whole graph (edit model, swap, restore) 0 px changed outside the
    crops and so outside the narrower blend zone; something must change inside them; and the node must
    say it appended the crop after the face photo's reference (core/inpaint/family.py)."""
    import numpy as np
    from PIL import Image

    prompt = history["prompt"][2]
    inpaints = [nid for nid, n in prompt.items() if n["class_type"] == "I2PFaceInpaint"]
    texts = [t for nid in inpaints for t in history["outputs"].get(nid, {}).get("text", [])]
    crops = [tuple(map(int, m)) for t in texts for m in re.findall(r"crop (\d+)x(\d+) at \((\d+),(\d+)\)", t)]
    if not crops:
        return [f"no crop reported by I2P Face Inpaint: {texts}"]
    problems = []
    if not all(EDIT_TARGET_LINE in t for t in texts):
        problems.append(f"I2P Face Inpaint did not append the crop as reference latent 2: {texts!r}")
    with Image.open(output) as im, Image.open(reference) as r:
        out, ref = np.asarray(im.convert("RGB")), np.asarray(r.convert("RGB"))
    outside = np.ones(ref.shape[:2], bool)
    for w, h, x, y in crops:
        outside[y:y + h, x:x + w] = False
    changed = np.any(out != ref, axis=-1)
    if not outside.any():
        problems.append(f"the face crops {crops} cover the whole photo: no background to check")
    elif changed[outside].any():
        problems.append(f"{int(changed[outside].sum())} px changed outside the face crops {crops}")
    if not changed[~outside].any():
        problems.append("nothing changed inside the face crops")
    return problems
