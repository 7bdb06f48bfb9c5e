"""Which manifest files a workflow needs, read from the workflow itself.

No second hand-kept list: every literal string input of an API-format prompt is looked up in the
manifest (a file name, an alias, or a group such as ``buffalo_l``), so a workflow that switches a
combo to another model needs another file without anyone editing a table. Two files are read by
nodes without a combo naming them, and those are derived from the code that reads them:

* the LoRA trained with a FaceID adapter (``ipadapter.lora_name_for``), unless ``lora_strength`` is 0;
* the content-safety classifier of the swap node (the manifest's ``nsfw-vit`` group, the files
  ``core/post/nsfw_gate.py`` opens; models/ does not import a stage) when ``content_safety`` is "on".
"""
from __future__ import annotations

from . import manifest
from .ipadapter import lora_name_for
from .manifest import ModelFile


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def _named(value: str) -> list[ModelFile]:
    """Manifest entries a literal input value names (none for prompts, image names, choices)."""
    if not value.strip():
        return []
    group = manifest.in_group(value)
    if group:
        return group
    base = value.replace("\\", "/")
    return [m for m in manifest.MODELS
            if base in (m.filename, m.filename.split("/")[-1]) or base in m.aliases]


def _read_by_code(inputs: dict) -> list[ModelFile]:
    """The files a node opens without a combo naming them (see the module docstring)."""
    found: list[ModelFile] = []
    adapter = inputs.get("ipadapter_file")
    strength = inputs.get("lora_strength", 1.0)
    if isinstance(adapter, str) and (_is_link(strength) or strength != 0):
        lora = lora_name_for(adapter)
        entry = manifest.by_filename("loras", lora) if lora else None
        if entry is not None:
            found.append(entry)
    if inputs.get("content_safety") == "on":  # the gate's files: the manifest's nsfw-vit group (models/
        found += manifest.in_group("nsfw-vit")   # never imports a stage such as core/post/nsfw_gate.py)
    return found


def models_for_prompt(prompt: dict) -> list[ModelFile]:
    """Every manifest file an API-format prompt needs, in manifest order, each once."""
    wanted: set[str] = set()
    for node in prompt.values():
        inputs = node.get("inputs", {}) if isinstance(node, dict) else {}
        for value in inputs.values():
            if isinstance(value, str):
                wanted.update(m.id for m in _named(value))
        wanted.update(m.id for m in _read_by_code(inputs))
    return [m for m in manifest.MODELS if m.id in wanted]
