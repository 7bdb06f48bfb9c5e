"""Identity nodes: adapter loader (+ FaceID LoRA), apply identity (MODEL patch), save / load identity.
Thin: parse widgets, call core/identity_apply.py and models/ipadapter.py, format the report."""
from __future__ import annotations

from ..core import comfy_adapter
from ..core.errors import I2PError
from ..core.faces.types import ANALYZER_TYPE, FACES_TYPE

CATEGORY = "IP-to-Portrait/identity"
ADAPTER_TYPE = "I2P_IDENTITY_ADAPTER"
IDENTITY_TYPE = "I2P_IDENTITY"
MODE_LABELS = {
    "FaceID Plus v2": "faceid_plus_v2",
    "FaceID": "faceid",
    "standard (CLIP image)": "standard",
    "CLIP blend (face + hair)": "clip_blend",
    "simple (no adapter)": "simple",
}
ADAPTER_DEFAULT = "ip-adapter-faceid-plusv2_sdxl.bin"


def _adapter_files() -> list[str]:
    """The manifest's IP-Adapter files first, installed or not (so a shared workflow validates before the
    download, as the other model combos do), then whatever else models/ipadapter holds."""
    from ..models import manifest

    known = [ADAPTER_DEFAULT] + [m.filename for m in manifest.MODELS if m.folder == "ipadapter"]
    return list(dict.fromkeys(known + comfy_adapter.list_models("ipadapter", (".bin", ".safetensors"))))


class I2PIdentityAdapterLoader:
    DESCRIPTION = (
        "Loads an IP-Adapter for identity from models/ipadapter: FaceID Plus v2 SDXL (recommended), FaceID "
        "SDXL, or the plain SDXL ViT-H image adapter. The kind is recognised from the file's weights. For "
        "FaceID adapters it applies the LoRA trained with them (models/loras/<adapter>_lora.safetensors) to "
        "the MODEL with ComfyUI's LoRA loader, and says plainly when that file is missing. IP-Adapter FaceID "
        "weights are for non-commercial use only."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("MODEL", ADAPTER_TYPE, "STRING")
    RETURN_NAMES = ("model", "adapter", "info")
    OUTPUT_TOOLTIPS = (
        "The MODEL with the adapter's LoRA applied (a clone; unchanged when there is no LoRA).",
        "The adapter, for I2P Apply Identity.",
        "What was loaded: adapter kind, what it needs, LoRA state, licence.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The SDXL model the identity goes into."}),
                "ipadapter_file": (_adapter_files(), {"default": ADAPTER_DEFAULT,
                                                      "tooltip": "IP-Adapter file in models/ipadapter (FaceID Plus v2 "
                                                                 "SDXL recommended). Names of files not downloaded yet "
                                                                 "are listed too; the run then says how to get them."}),
                "lora_strength": ("FLOAT", {"default": 0.6, "min": 0.0, "max": 2.0, "step": 0.05,
                                            "tooltip": "Strength of the FaceID LoRA trained with the adapter (0 = off). 0.6 is IPAdapter_plus' default; tencent-ailab's reference uses 1.0."}),
                "plus_version": (["auto", "v2", "v1"], {"default": "auto",
                                                       "tooltip": "FaceID Plus v1 and v2 files have the same weights layout; auto reads 'plusv2' in the file name."}),
            }
        }

    def load(self, model, ipadapter_file: str, lora_strength: float, plus_version: str):
        from ..models import ipadapter as ipa
        from ..models.manifest import license_text
        from .face_swap import _need  # the model-file lookup every loader shares (names the download id)

        path = _need("ipadapter", ipadapter_file, "ipadapter_file", node=ipa.NODE)
        adapter = ipa.load_ipadapter(path, plus_version)
        patched, lora_msg = ipa.apply_lora(model, adapter, lora_strength)
        if patched is model:
            patched = model.clone() if hasattr(model, "clone") else model
        text = "\n".join([adapter.describe(), lora_msg, "licence: " + license_text("ipadapter", ipadapter_file)])
        return {"ui": {"text": [text]}, "result": (patched, adapter, text)}


class I2PApplyIdentity:
    DESCRIPTION = (
        "Puts the source face's identity into the MODEL as an attention patch in all 70 SDXL cross-attention "
        "layers (a clone: the input MODEL is untouched; applying twice replaces, never stacks). Modes: FaceID "
        "Plus v2 (ArcFace + CLIP of the aligned face), FaceID (ArcFace), standard (CLIP of the face with hair), "
        "CLIP blend (CLIP features of the aligned face and of the face with hair, mixed), simple (no patch). start_at/stop_at count "
        "sampling steps exactly: with N steps the identity is on in round(stop_at*N) - round(start_at*N) "
        "steps, for any scheduler, sampler and denoise. Coming from IPAdapter_plus: its end_at is a noise "
        "level (0.9 of 30 Karras steps = 21 steps on, here 27: use stop_at 0.7 for the same), it skips the 10 "
        "middle-block layers (here all 70 are patched: lower weight a little), LoRA 0.6 in both (tencent's "
        "reference: 1.0). See docs/identity.md."
    )
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("MODEL", IDENTITY_TYPE, "STRING")
    RETURN_NAMES = ("model", "identity", "info")
    OUTPUT_TOOLTIPS = (
        "The patched MODEL clone, for the inpaint node or a KSampler.",
        "The computed identity (embedding + CLIP features), for I2P Save Face Identity.",
        "Mode, adapter, sources, and in which steps the identity is active.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The SDXL MODEL (from the adapter loader when a LoRA is used)."}),
                "mode": (list(MODE_LABELS), {"default": "FaceID Plus v2",
                                             "tooltip": "How the identity is injected; each mode needs its adapter kind (see the docs)."}),
                "weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 3.0, "step": 0.05,
                                     "tooltip": "Face strength: scale of the identity attention term."}),
                "v2_shortcut_weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 5.0, "step": 0.05,
                                                 "tooltip": "FaceID Plus v2 only: s in tokens = x + s*resampler(x, clip). Higher = more of the CLIP (photo) face structure; lower = more of the ArcFace embedding alone."}),
                "start_at": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                       "tooltip": "Fraction of the sampling steps run before the identity switches on."}),
                "stop_at": ("FLOAT", {"default": 0.9, "min": 0.0, "max": 1.0, "step": 0.01,
                                      "tooltip": "Fraction of the steps after which it switches off: 0.9 of 30 steps = on for 27 steps."}),
                "average_sources": ("BOOLEAN", {"default": True,
                                                "tooltip": "Several source images: average their embeddings and CLIP features into one identity (off: their tokens are concatenated)."}),
                "steps": ("INT", {"default": 20, "min": 1, "max": 1000,
                                  "tooltip": "Only for the report: the sampler's step count, to show which steps the identity is on in."}),
            },
            "optional": {
                "adapter": (ADAPTER_TYPE, {"tooltip": "From I2P Identity Adapter Loader (not needed in simple mode)."}),
                "clip_vision": ("CLIP_VISION", {"tooltip": "CLIP-ViT-H-14-laion2B-s32B-b79K from the core Load CLIP Vision node (FaceID Plus v2, standard, CLIP blend)."}),
                "image": ("IMAGE", {"tooltip": "The source face photo(s); a batch gives several source images."}),
                "faces": (FACES_TYPE, {"tooltip": "Faces found in 'image' by the face analyzer; the first selected face of each image is used."}),
                "analyzer": (ANALYZER_TYPE, {"tooltip": "Instead of 'faces': the analyzer finds the largest face in each image."}),
                "identity": (IDENTITY_TYPE, {"tooltip": "A saved identity (I2P Load Face Identity) instead of image + faces."}),
                "attn_mask": ("MASK", {"tooltip": "Where the identity acts (e.g. the inpaint mask of the image being sampled); resized to each layer's grid."}),
                "clip_blend": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05,
                                         "tooltip": "CLIP blend mode: share of the face-with-hair crop's CLIP features in the mix with the aligned face's."}),
            },
        }

    def apply(self, model, mode, weight, v2_shortcut_weight, start_at, stop_at, average_sources, steps,
              adapter=None, clip_vision=None, image=None, faces=None, analyzer=None, identity=None,
              attn_mask=None, clip_blend=0.5):
        from ..core.identity.apply import apply_identity
        from ..core.images import image_input

        images = image_input(image, "I2P Apply Identity", "image") if image is not None else None
        patched, ident, text = apply_identity(
            model, MODE_LABELS[mode], weight, start_at, stop_at, adapter=adapter, identity=identity,
            images=images, faces=faces, analyzer=analyzer, clip_vision=clip_vision,
            shortcut_weight=v2_shortcut_weight, mask=attn_mask, average=average_sources,
            clip_blend=clip_blend, steps=steps)
        return {"ui": {"text": [text]}, "result": (patched, ident, text)}


IDENTITY_FOLDER = "identities"  # a models folder registered with ComfyUI (models/manifest.py MODEL_FOLDERS)
IDENTITY_LABEL = f"models/{IDENTITY_FOLDER}"
SAVE_NODE = "I2P Save Face Identity"
LOAD_NODE = "I2P Load Face Identity"


def _identity_file_name(name: str) -> str:
    """What the user typed, with the one extension identities have."""
    name = (name or "").strip()
    if not name or name.lower().endswith(".safetensors"):
        return name  # empty stays empty: core/paths.py refuses it with its message
    return f"{name}.safetensors"


class I2PSaveIdentity:
    DESCRIPTION = (
        "Saves a computed identity (ArcFace embedding + CLIP features) as a .safetensors file in ComfyUI's "
        "models/identities folder, so a person's identity is computed once and reused with I2P Load Face "
        "Identity. Written atomically. An existing file is never replaced unless 'overwrite' is on: the new "
        "one gets the next free number (anna_00001), as ComfyUI's Save Image does."
    )
    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("identity_file",)
    OUTPUT_TOOLTIPS = ("The saved file's name inside models/identities, as I2P Load Face Identity lists it.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "identity": (IDENTITY_TYPE, {"tooltip": "From I2P Apply Identity."}),
                "name": ("STRING", {"default": "person",
                                    "tooltip": "File name inside ComfyUI's models/identities (.safetensors is "
                                               "added); sub-folders are allowed, e.g. family/anna. Absolute "
                                               "paths and '..' are refused."}),
                "overwrite": ("BOOLEAN", {"default": False,
                                          "tooltip": "Replace an existing identity of that name. Off: the new "
                                                     "one is saved as name_00001, name_00002, ..."}),
            }
        }

    def save(self, identity, name: str, overwrite: bool):
        from ..core.identity.encoding import save_identity
        from ..core.paths import inside

        if identity is None or all(getattr(identity, k, None) is None for k in ("embedding", "clip_hidden",
                                                                                 "clip_embeds")):
            raise I2PError(SAVE_NODE, "identity", "no identity to save (simple mode computes none).",
                           "use a mode with an adapter, or connect a loaded identity.")
        root = comfy_adapter.folder_dirs(IDENTITY_FOLDER)[0]
        target = inside(root, _identity_file_name(name), SAVE_NODE, "name", IDENTITY_LABEL)
        written = save_identity(identity, target, overwrite)
        rel = written.relative_to(root).as_posix()
        text = f"saved {IDENTITY_LABEL}/{rel}"
        return {"ui": {"text": [text]}, "result": (rel,)}


def _find_identity(identity_file: str):
    from ..core.paths import find_inside

    path = find_inside(comfy_adapter.folder_dirs(IDENTITY_FOLDER), identity_file, LOAD_NODE, "identity_file",
                       IDENTITY_LABEL)
    if path is None or not path.is_file():
        raise I2PError(LOAD_NODE, "identity_file", f"'{identity_file}' is not in {IDENTITY_LABEL}.",
                       "save one with I2P Save Face Identity, then refresh the editor (R) so the list shows it.")
    return path


class I2PLoadIdentity:
    DESCRIPTION = ("Loads an identity saved by I2P Save Face Identity (a file in models/identities), for I2P "
                   "Apply Identity's 'identity' input: no face photo, detector or CLIP needed again.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (IDENTITY_TYPE, "STRING")
    RETURN_NAMES = ("identity", "info")
    OUTPUT_TOOLTIPS = ("The identity.", "What the file holds: sources, CLIP model, fields.")

    @classmethod
    def INPUT_TYPES(cls):
        files = comfy_adapter.list_models(IDENTITY_FOLDER, (".safetensors",))
        return {
            "required": {
                "identity_file": (files, {"tooltip": "An identity in ComfyUI's models/identities, written by I2P "
                                                     "Save Face Identity (refresh the editor after saving)."}),
            }
        }

    @classmethod
    def IS_CHANGED(cls, identity_file):
        try:
            return _find_identity(identity_file).stat().st_mtime
        except (I2PError, OSError):
            return float("nan")  # run, and let load() say what is wrong

    def load(self, identity_file: str):
        from ..core.model_errors import model_file_errors
        from ..core.identity.encoding import load_identity

        path = _find_identity(identity_file)
        shown = f"{IDENTITY_LABEL}/{identity_file}"
        with model_file_errors(LOAD_NODE, "identity_file", path, "an identity file (safetensors)",
                               folder=IDENTITY_FOLDER):
            try:
                ident = load_identity(path)
            except ValueError:  # readable safetensors, but not ours
                raise I2PError(LOAD_NODE, "identity_file", f"{shown} is not an identity file (no "
                               "IP-to-Portrait identity metadata).", "pick a file written by I2P Save Face "
                               "Identity.") from None
        fields = [k for k in ("embedding", "clip_hidden", "clip_embeds") if getattr(ident, k) is not None]
        text = f"{identity_file}: {ident.sources} source image(s), fields {', '.join(fields)}, CLIP {ident.meta.get('clip', '-')}"
        return {"ui": {"text": [text]}, "result": (ident, text)}


NODE_CLASS_MAPPINGS = {
    "I2PIdentityAdapterLoader": I2PIdentityAdapterLoader,
    "I2PApplyIdentity": I2PApplyIdentity,
    "I2PSaveIdentity": I2PSaveIdentity,
    "I2PLoadIdentity": I2PLoadIdentity,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "I2PIdentityAdapterLoader": "I2P Identity Adapter Loader",
    "I2PApplyIdentity": "I2P Apply Identity",
    "I2PSaveIdentity": "I2P Save Face Identity",
    "I2PLoadIdentity": "I2P Load Face Identity",
}
