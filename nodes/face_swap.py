"""I2P Face Swap: source faces onto target faces with inswapper_128 or Ghost, own paste-back, seam mask."""
from __future__ import annotations

from ..core import comfy_adapter
from ..core.errors import I2PError
from ..core.model_errors import ModelFileMissing
from ..core.faces.types import ANALYZER_TYPE, FACES_TYPE
from ..core.onnx_sessions import PROVIDER_CHOICES
from ..models import manifest

NODE = "I2P Face Swap"
GHOST_PREFIX = "ghost/"
NO_BOOST = "none"


def swap_model_choices() -> list[str]:
    """inswapper graphs from models/insightface and Ghost generators from models/ghost; the manifest's
    names are always offered so shared workflows validate before the files are downloaded."""
    onnx = [n for n in comfy_adapter.list_models("insightface", [".onnx"]) if "swapper" in n.lower()]
    ghost = [GHOST_PREFIX + n for n in comfy_adapter.list_models("ghost", [".pth", ".safetensors"])
             if "backbone" not in n.lower() and "arcface" not in n.lower()]
    defaults = ["inswapper_128.onnx", "inswapper_128.fp16.onnx", GHOST_PREFIX + "G_unet_2blocks.pth"]
    return list(dict.fromkeys(defaults + sorted(onnx) + sorted(ghost)))


def restore_model_choices() -> list[str]:
    return list(dict.fromkeys(["GFPGANv1.4.pth"] + comfy_adapter.list_models(
        "facerestore_models", [".pth", ".pt", ".safetensors"])))


def _need(folder: str, name: str, input_name: str, model_id: str | None = None, node: str = NODE):
    path = comfy_adapter.find_model(folder, name)
    if path is None:
        if model_id is None:
            entry = manifest.by_filename(folder, name)
            model_id = entry.id if entry else None
        raise ModelFileMissing(node, input_name, folder, name, model_id)
    return path


def load_swap_model(choice: str, provider: str):
    """(swap model, licence lines)."""
    if choice.startswith(GHOST_PREFIX):
        from ..core.post.ghost import load_ghost

        name = choice[len(GHOST_PREFIX):]
        g = _need("ghost", name, "swap_model")
        arc = _need("ghost", "backbone.pth", "swap_model", "ghost-arcface")
        return load_ghost(g, arc), [manifest.license_text("ghost", name), manifest.license_text("ghost", "backbone.pth")]
    from ..core.post.swap import InSwapper

    path = _need("insightface", choice, "swap_model")
    model = InSwapper(str(path), provider)
    return model, [manifest.license_text("insightface", choice),
                   "source identity: buffalo_l ArcFace embedding - "
                   + manifest.license_text("insightface", "models/buffalo_l/w600k_r50.onnx").split(": ", 1)[1]]


class I2PFaceSwap:
    DESCRIPTION = (
        "Puts source faces onto target faces: inswapper_128 (InsightFace, NON-COMMERCIAL licence) or Ghost "
        "(AEI-Net 256 px, Apache-2.0, commercial use allowed). Source face i goes onto target face j as "
        "written in source_indices -> target_indices (e.g. '0,1' -> '1,0'), counted in the detect node's "
        "selection order, so couples of any genders work. The face is pasted back through an eroded, "
        "feathered face-only mask with colour matched to the target's light; pixels outside it are unchanged. "
        "A content-safety classifier refuses explicit inputs (on by default). The info output lists every "
        "model's licence."
    )
    CATEGORY = "IP-to-Portrait/post"
    FUNCTION = "swap"
    RETURN_TYPES = ("IMAGE", "MASK", FACES_TYPE, "STRING")
    RETURN_NAMES = ("image", "seam_mask", "swapped_faces", "info")
    OUTPUT_TOOLTIPS = (
        "The target image(s) with the swapped faces.",
        "A band around the edge of each swapped face: wire it as the mask of I2P Face Inpaint at denoise "
        "~0.3 to blend the border (optional refinement).",
        "The target faces that received a source face (for I2P Face Restore 'only swapped faces').",
        "Models, execution provider, face pairs, licences and the content-safety scores.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The target photo(s): faces here are replaced."}),
                "target_faces": (FACES_TYPE, {"tooltip": "I2P Detect Faces on the target image (selection order "
                                                         "gives the target indices)."}),
                "source_image": ("IMAGE", {"tooltip": "The photo(s) with the identity; a batch of several "
                                                      "photos is allowed (faces are counted across it)."}),
                "source_faces": (FACES_TYPE, {"tooltip": "I2P Detect Faces on the source image(s)."}),
                "swap_model": (swap_model_choices(), {"default": "inswapper_128.onnx",
                                                      "tooltip": "inswapper_128 (models/insightface, "
                                                                 "non-commercial) or ghost/G_unet_2blocks.pth "
                                                                 "(models/ghost, Apache-2.0; needs backbone.pth "
                                                                 "there too)."}),
                "source_indices": ("STRING", {"default": "", "tooltip": "Source faces to use, e.g. '0,1'. "
                                              "Empty = 0,1,2... (as many as target_indices lists, or both sides have)."}),
                "target_indices": ("STRING", {"default": "", "tooltip": "Where each source face goes, e.g. "
                                              "'1,0' puts source 0 on target 1 and source 1 on target 0. "
                                              "Empty = same order as the sources."}),
                "provider": (PROVIDER_CHOICES, {"default": "auto", "tooltip": "ONNX Runtime execution provider for "
                                         "inswapper (the one really used is reported in info). Ghost runs on "
                                         "ComfyUI's torch device."}),
                "resolution_boost": ([NO_BOOST] + restore_model_choices(), {"default": NO_BOOST,
                                     "tooltip": "Swap, then restore the face at 512 px with this model "
                                                "(models/facerestore_models) before pasting: 128 px swaps look "
                                                "blurry on large photos."}),
                "colour_correction": ("BOOLEAN", {"default": True, "tooltip": "Match the swapped face's "
                                                  "colour and brightness to the target's light."}),
                "mask_erode": ("FLOAT", {"default": 0.05, "min": 0.0, "max": 0.3, "step": 0.01,
                                         "tooltip": "Shrink the face mask by this fraction of the face height "
                                                    "(keeps the target's jaw line and hairline)."}),
                "mask_blur": ("FLOAT", {"default": 0.08, "min": 0.0, "max": 0.3, "step": 0.01,
                                        "tooltip": "Feather the mask edge by this fraction of the face height."}),
                "seam_width": ("INT", {"default": 0, "min": 0, "max": 256, "step": 1,
                                       "tooltip": "Width in pixels of the seam_mask band; 0 = 6% of the face size."}),
                "content_safety": (["on", "off"], {"default": "on", "tooltip": "Refuse explicit source or target "
                                                   "images (NSFW classifier in models/nsfw_detector). 'off' only if "
                                                   "you have your own safeguards."}),
                "nsfw_threshold": ("FLOAT", {"default": 0.8, "min": 0.05, "max": 1.0, "step": 0.01,
                                             "tooltip": "Refuse when the classifier's P(nsfw) reaches this."}),
            },
            "optional": {
                "analyzer": (ANALYZER_TYPE, {"tooltip": "I2P Face Analyzer Loader. Connect it when an earlier node "
                                                        "changed 'image' (e.g. Face Inpaint): the target faces are "
                                                        "detected again on it and matched by overlap, so the swap "
                                                        "follows a face that moved."}),
            },
        }

    def swap(self, image, target_faces, source_image, source_faces, swap_model, source_indices, target_indices,
             provider, resolution_boost, colour_correction, mask_erode, mask_blur, seam_width, content_safety,
             nsfw_threshold, analyzer=None):
        from ..core.faces.types import Faces
        from ..core.images import from_mask_arrays, from_rgb_uint8, image_input
        from ..core.post import nsfw_gate
        from ..core.post.swap import SwapOptions
        from ..core.post.swap_images import plan_swaps, run_swaps

        for name, faces in (("target_faces", target_faces), ("source_faces", source_faces)):
            if not isinstance(faces, Faces):
                raise I2PError(NODE, name, "this is not a FACES value.", "connect the faces output of I2P Detect Faces.")
        if not swap_model.startswith(GHOST_PREFIX):  # Ghost embeds the source itself, with its own ArcFace
            from ..core.faces.permissive import refuse_auraface

            refuse_auraface(source_faces, NODE, "source_faces", swap_model)
        if analyzer is not None and not hasattr(analyzer, "detect"):
            raise I2PError(NODE, "analyzer", "this is not a face analyzer.", "connect I2P Face Analyzer Loader.")
        targets = image_input(image, NODE, "image")
        sources = image_input(source_image, NODE, "source_image")
        plan = plan_swaps(targets, target_faces, sources, source_faces, source_indices, target_indices, analyzer)
        lines, licences = [], []
        if content_safety == "on":
            report = nsfw_gate.check({"source_image": sources, "image": targets}, NODE, nsfw_threshold)
            lines.append(report.text() + f" (threshold {nsfw_threshold:.2f})")
            licences.append(manifest.license_text(nsfw_gate.FOLDER, f"{nsfw_gate.SUBDIR}/model.safetensors"))
        else:
            lines.append("content safety: OFF (switched off on this node)")
        model = boost = None
        if plan.total:  # nothing to swap (every image passed through): no model is loaded
            model, model_licences = load_swap_model(swap_model, provider)
            licences = model_licences + licences
            if resolution_boost != NO_BOOST:
                from ..core.post.restore import load_restorer

                boost = load_restorer(_need("facerestore_models", resolution_boost, "resolution_boost"), NODE,
                                      input_name="resolution_boost")
                licences.append(manifest.license_text("facerestore_models", resolution_boost))
        opts = SwapOptions(erode=mask_erode, blur=mask_blur, colour_correction=colour_correction, boost=boost,
                           seam_width=seam_width)
        with comfy_adapter.Progress(max(plan.total, 1), desc="I2P face swap") as progress:
            out = run_swaps(plan, targets, model, opts, progress)
        head = [model.describe() + (f", boost: {boost.describe()}" if boost else "") if model else
                "no face to swap: the image(s) passed through unchanged"]
        text = "\n".join(head + lines + out.lines + ["licences:"] + [f"  {x}" for x in licences])
        faces_out = Faces(sets=out.swapped, analyzer=target_faces.analyzer,
                          recognizer=getattr(target_faces, "recognizer", ""))
        return {"ui": {"text": [text]},
                "result": (from_rgb_uint8(out.images), from_mask_arrays(out.seams), faces_out, text)}


NODE_CLASS_MAPPINGS = {"I2PFaceSwap": I2PFaceSwap}
NODE_DISPLAY_NAME_MAPPINGS = {"I2PFaceSwap": "I2P Face Swap"}
