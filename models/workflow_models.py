"""Which manifest files a workflow needs, read from the workflow itself.

No second hand-kept list: these are the files the licence audit (:mod:`.audit`) finds the prompt's
nodes loading (the pack's loaders, ComfyUI's core loaders, and model-looking values of other nodes),
so a workflow that switches a combo to another model needs another file without anyone editing a
table, and ``portrait`` downloads exactly what ``I2P License Check`` reports. That includes the files
nodes open without a combo naming them: the LoRA trained with a FaceID adapter (unless
``lora_strength`` is 0), the swap node's content-safety classifier, the files of the face analyzer's
pack (buffalo_l, or YuNet + AuraFace).
"""
from __future__ import annotations

from . import manifest
from .audit import loaded_files
from .manifest import ModelFile


def models_for_prompt(prompt: dict) -> list[ModelFile]:
    """Every manifest file an API-format prompt needs, in manifest order, each once."""
    wanted = {f.entry.id for f in loaded_files(prompt) if f.entry is not None}
    return [m for m in manifest.MODELS if m.id in wanted]
