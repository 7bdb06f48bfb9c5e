"""A licence audit of a ComfyUI prompt: every model file the graph loads, with its licence from the
manifest, and one verdict for the whole graph.

Input is the API-format prompt ComfyUI executes (``{node_id: {"class_type", "inputs", "_meta"}}``), the
same dict a node receives through the hidden ``PROMPT`` input, so the audit sees exactly what is about
to run. Which input of which node names a file is known for the pack's loaders and ComfyUI's core
loaders (:data:`CORE_LOADERS`, :func:`pack_files`); any other node that carries a value that looks like a
model file is listed too, as "node not known to the check". A file the manifest does not know, or a file
name that only arrives through a link at run time, is "unknown": it is never called clean.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from . import manifest
from .ipadapter import lora_name_for

#: core loader class -> (input, models/ folder) pairs
CORE_LOADERS: dict[str, tuple[tuple[str, str], ...]] = {
    "CheckpointLoaderSimple": (("ckpt_name", "checkpoints"),),
    "CheckpointLoader": (("ckpt_name", "checkpoints"),),
    "ImageOnlyCheckpointLoader": (("ckpt_name", "checkpoints"),),
    "unCLIPCheckpointLoader": (("ckpt_name", "checkpoints"),),
    "LoraLoader": (("lora_name", "loras"),),
    "LoraLoaderModelOnly": (("lora_name", "loras"),),
    "LoraLoaderBypass": (("lora_name", "loras"),),
    "LoraLoaderBypassModelOnly": (("lora_name", "loras"),),
    "CLIPVisionLoader": (("clip_name", "clip_vision"),),
    "UpscaleModelLoader": (("model_name", "upscale_models"),),
    "VAELoader": (("vae_name", "vae"),),
    "CLIPLoader": (("clip_name", "text_encoders"),),
    "DualCLIPLoader": (("clip_name1", "text_encoders"), ("clip_name2", "text_encoders")),
    "TripleCLIPLoader": tuple((f"clip_name{i}", "text_encoders") for i in (1, 2, 3)),
    "QuadrupleCLIPLoader": tuple((f"clip_name{i}", "text_encoders") for i in (1, 2, 3, 4)),
    "UNETLoader": (("unet_name", "diffusion_models"),),
    "ControlNetLoader": (("control_net_name", "controlnet"),),
    "DiffControlNetLoader": (("control_net_name", "controlnet"),),
    "StyleModelLoader": (("style_model_name", "style_models"),),
    "GLIGENLoader": (("gligen_name", "gligen"),),
    "HypernetworkLoader": (("hypernetwork_name", "hypernetworks"),),
    "PhotoMakerLoader": (("photomaker_model_name", "photomaker"),),
}
MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".onnx", ".gguf", ".sft")
# the face swap node's choice values (nodes/face_swap.py; a test keeps them equal)
GHOST_PREFIX = "ghost/"
NO_BOOST = "none"
PERMISSIVE_PACK = "YuNet + AuraFace (commercial)"  # core/faces/permissive.py PACK (a test keeps them equal)
#: nodes that send data to a service instead of loading a file
SERVICES = {"I2PAutoPromptGemini": "sends the face photo to Google's Gemini API: Google's API terms apply"}


@dataclass(frozen=True)
class Loaded:
    """One model file one node loads."""

    node_id: str
    title: str
    class_type: str
    input_name: str
    folder: str  # "?" when the node is not known to the check
    filename: str  # "" when the value arrives through a link
    entry: manifest.ModelFile | None
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.entry is None:
            return "unknown"
        return "commercial" if self.entry.commercial else "non-commercial"

    @property
    def where(self) -> str:
        return f"#{self.node_id} '{self.title}' ({self.class_type})"

    @property
    def file(self) -> str:
        return f"{self.folder}/{self.filename}" if self.filename else f"<{self.input_name}: linked>"

    def line(self) -> str:
        if self.entry is None:
            licence = "unknown licence (not in the IP-to-Portrait manifest) - check it yourself"
        else:
            licence = self.entry.license_line.split(": ", 1)[1]
        return f"{self.where}: {self.file} - {licence}" + (f" [{self.note}]" if self.note else "")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def pack_files(class_type: str, inputs: dict) -> list[tuple[str, str, str]] | None:
    """(input, folder, file) the pack's node ``class_type`` loads with these inputs; None = not a pack
    node that loads files. A linked value gives file ""."""
    def value(name: str) -> str:
        return _text(inputs.get(name)) or ""

    if class_type == "I2PFaceAnalyzerLoader":
        pack = value("pack")
        if not pack:
            return [("pack", "insightface", "")]
        group = "yunet+auraface" if pack == PERMISSIVE_PACK else pack
        files = manifest.in_group(group)
        if files:
            return [("pack", m.folder, m.filename) for m in files]
        return [("pack", "insightface", f"models/{pack}/*.onnx")]
    if class_type == "I2PIdentityAdapterLoader":
        name = value("ipadapter_file")
        out = [("ipadapter_file", "ipadapter", name)]
        lora = lora_name_for(name) if name else None
        strength = inputs.get("lora_strength", 0.6)
        if lora and not (isinstance(strength, (int, float)) and strength == 0):
            out.append(("ipadapter_file", "loras", lora))
        return out
    if class_type == "I2PFaceParsingMask":
        return [("parsing_model", "facedetection", value("parsing_model"))]
    if class_type == "I2PLoadIdentity":  # the user's own file; its licence is that of the models that made it
        return [("identity_file", "identities", value("identity_file"))]
    if class_type == "I2PFaceRestore":
        return [("restore_model", "facerestore_models", value("restore_model"))]
    if class_type == "I2PFaceSwap":
        name = value("swap_model")
        if name.startswith(GHOST_PREFIX):
            out = [("swap_model", "ghost", name[len(GHOST_PREFIX):]), ("swap_model", "ghost", "backbone.pth")]
        else:
            out = [("swap_model", "insightface", name)]
        boost = inputs.get("resolution_boost", NO_BOOST)
        if boost != NO_BOOST:
            out.append(("resolution_boost", "facerestore_models", _text(boost) or ""))
        if inputs.get("content_safety", "on") != "off":
            out += [("content_safety", m.folder, m.filename) for m in manifest.in_group("nsfw-vit")]
        return out
    return None


def _entry(folder: str, filename: str) -> manifest.ModelFile | None:
    if not filename or "*" in filename:
        return None
    return manifest.by_filename(folder, filename)


def _guess(filename: str) -> tuple[str, manifest.ModelFile | None]:
    """A model-looking value of a node the check does not know: the manifest entry of that file name in
    any folder (top-level names only, see ``manifest.by_filename``)."""
    for folder in sorted({m.folder for m in manifest.MODELS}):
        found = manifest.by_filename(folder, filename)
        if found is not None:
            return folder, found
    return "?", None


def loaded_files(prompt: dict, skip: tuple[str, ...] = ()) -> Iterator[Loaded]:
    """Every model file the nodes of ``prompt`` load, in node-id order."""
    def order(key: str):
        return (0, int(key)) if str(key).isdigit() else (1, str(key))

    for node_id in sorted(prompt or {}, key=order):
        node = prompt[node_id]
        if str(node_id) in skip or not isinstance(node, dict):
            continue
        class_type = str(node.get("class_type", "?"))
        inputs = node.get("inputs") or {}
        title = str((node.get("_meta") or {}).get("title") or class_type)
        base = dict(node_id=str(node_id), title=title, class_type=class_type)
        files = pack_files(class_type, inputs)
        if files is None and class_type in CORE_LOADERS:
            files = [(name, folder, _text(inputs.get(name)) or "") for name, folder in CORE_LOADERS[class_type]
                     if name in inputs]
        if files is not None:
            for name, folder, filename in files:
                src = inputs.get(name)
                note = "" if filename else (f"the file name comes through a link from node {src[0]}"
                                            if isinstance(src, list) and src else "no file name given")
                yield Loaded(input_name=name, folder=folder, filename=filename, entry=_entry(folder, filename),
                             note=note, **base)
            continue
        for name, value in inputs.items():  # a node the check does not know: model-looking values
            if isinstance(value, str) and value.lower().endswith(MODEL_EXTENSIONS):
                folder, entry = _guess(value)
                yield Loaded(input_name=name, folder=folder, filename=value, entry=entry,
                             note="node not known to the licence check; matched by file name only", **base)


@dataclass
class Audit:
    files: list[Loaded]
    services: list[str]

    @property
    def offending(self) -> list[Loaded]:
        return [f for f in self.files if f.verdict != "commercial"]

    @property
    def commercial(self) -> bool:
        return not self.offending

    def verdict(self) -> str:
        if not self.files:
            return "VERDICT: this graph loads no model file the check knows of."
        if self.commercial:
            return ("VERDICT: every model file this graph loads is marked for commercial use by its publisher "
                    "(see the caveats, if any).")
        nc = sum(f.verdict == "non-commercial" for f in self.offending)
        unknown = len(self.offending) - nc
        return (f"VERDICT: NOT cleared for commercial use: {nc} non-commercial file(s), {unknown} file(s) of "
                "unknown licence.")

    def report(self) -> str:
        lines = [self.verdict(), ""]
        lines += [("  ok  " if f.verdict == "commercial" else "  NO  ") + f.line() for f in self.files]
        lines += [f"  note: {s}" for s in self.services]
        return "\n".join(lines)


def audit(prompt: dict, skip: tuple[str, ...] = ()) -> Audit:
    services = []
    for node_id, node in (prompt or {}).items():
        if isinstance(node, dict) and node.get("class_type") in SERVICES and str(node_id) not in skip:
            title = (node.get("_meta") or {}).get("title") or node["class_type"]
            services.append(f"#{node_id} '{title}' {SERVICES[node['class_type']]}")
    return Audit(list(loaded_files(prompt, skip)), services)
