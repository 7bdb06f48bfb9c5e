"""I2P Face Restore: GFPGAN v1.4 (or another spandrel face-restoration model) on the selected faces."""
from __future__ import annotations

from ..core import comfy_adapter
from ..core.errors import I2PError
from ..core.faces.types import ANALYZER_TYPE, FACES_TYPE
from ..models import manifest
from .face_swap import _need, restore_model_choices

NODE = "I2P Face Restore"
WHICH = ["all selected faces", "only swapped faces"]


class I2PFaceRestore:
    DESCRIPTION = (
        "Restores faces with GFPGAN v1.4 (Apache-2.0; loaded through spandrel, which also recognises "
        "RestoreFormer and - with its extra package - CodeFormer). Each face is aligned to the 512 px FFHQ "
        "template from its landmarks, restored, and pasted back through a soft face-only mask; 'strength' "
        "blends restored and original on the face only, so the rest of the photo is untouched. Runs in bf16 where "
        "the device computes it natively (recent CPUs and GPUs), else fp32."
    )
    CATEGORY = "IP-to-Portrait/post"
    FUNCTION = "restore"
    RETURN_TYPES = ("IMAGE", "MASK", "STRING")
    RETURN_NAMES = ("image", "face_mask", "info")
    OUTPUT_TOOLTIPS = (
        "The image(s) with restored faces.",
        "Where the restored faces were blended in (weight 0..strength).",
        "Model, device, faces restored and the model's licence.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The image(s) whose faces are restored (e.g. the swap result)."}),
                "faces": (FACES_TYPE, {"tooltip": "Face landmarks from I2P Detect Faces on this image (positions "
                                                  "are unchanged by a swap, so the target's faces work)."}),
                "restore_model": (restore_model_choices(), {"default": "GFPGANv1.4.pth",
                                  "tooltip": "A face-restoration model in models/facerestore_models."}),
                "strength": ("FLOAT", {"default": 0.8, "min": 0.0, "max": 1.0, "step": 0.05,
                                       "tooltip": "0 = original face, 1 = fully restored; only the face "
                                                  "region changes."}),
                "which_faces": (WHICH, {"default": WHICH[0], "tooltip": "'only swapped faces' restores just the "
                                        "faces listed in swapped_faces (connect I2P Face Swap's output)."}),
            },
            "optional": {
                "swapped_faces": (FACES_TYPE, {"tooltip": "I2P Face Swap's swapped_faces output; used with "
                                                          "which_faces = 'only swapped faces'."}),
                "analyzer": (ANALYZER_TYPE, {"tooltip": "I2P Face Analyzer Loader. Connect it when an earlier node "
                                                        "changed the image after the faces were detected (e.g. Face "
                                                        "Inpaint): the faces are detected again on it and matched by "
                                                        "overlap, so the restore follows a face that moved."}),
            },
        }

    def restore(self, image, faces, restore_model, strength, which_faces, swapped_faces=None, analyzer=None):
        import numpy as np

        from ..core.faces import known
        from ..core.faces.follow import faces_on, fingerprint
        from ..core.faces.types import Faces
        from ..core.images import from_mask_arrays, from_rgb_uint8, image_input
        from ..core.post.restore import load_restorer, restore_faces

        chosen, input_name = faces, "faces"
        if which_faces == WHICH[1]:
            if swapped_faces is None:
                raise I2PError(NODE, "swapped_faces", "'only swapped faces' needs the swap node's swapped_faces.",
                               "connect I2P Face Swap's swapped_faces output, or choose 'all selected faces'.")
            chosen, input_name = swapped_faces, "swapped_faces"
        if not isinstance(chosen, Faces):
            raise I2PError(NODE, input_name, "this is not a FACES value.", "connect I2P Detect Faces' faces output.")
        if analyzer is not None and not hasattr(analyzer, "detect"):
            raise I2PError(NODE, "analyzer", "this is not a face analyzer.", "connect I2P Face Analyzer Loader.")
        images = image_input(image, NODE, "image")
        if len(chosen.sets) not in (1, len(images)):
            raise I2PError(NODE, input_name, f"FACES holds {len(chosen.sets)} image(s) but the IMAGE batch has "
                           f"{len(images)}.", "detect faces on the same IMAGE batch you connect here.")
        # where each image's faces are now (checked before the model loads); notes for the info text
        plan, notes = [], []
        for b, rgb in enumerate(images):
            fset = chosen.for_image(b)
            if not fset.faces:
                plan.append([])
                notes.append(f"image {b}: no face (passed through by I2P Detect Faces), left unchanged")
                continue
            found, follow = faces_on(fset, rgb, analyzer, NODE, input_name, f"image {b}", resized_ok=True)
            plan.append(found)
            notes += follow
        total = sum(len(p) for p in plan)
        lines = []
        restorer = None
        if strength <= 0:
            lines.append("strength 0: image passed through unchanged")
        elif total:
            restorer = load_restorer(_need("facerestore_models", restore_model, "restore_model", node=NODE), NODE)
            lines.append(restorer.describe())
        lines += notes
        outs, masks = [], []
        with comfy_adapter.Progress(max(total, 1), desc="I2P face restore") as progress:
            for b, (rgb, fs) in enumerate(zip(images, plan)):
                if restorer is None or not fs:
                    outs.append(rgb)
                    masks.append(np.zeros(rgb.shape[:2], np.float32))
                    continue
                res = restore_faces(rgb, fs, restorer, strength, progress=progress)
                known.place(fingerprint(res.image), fs)  # changed only inside these faces: no re-detection
                outs.append(res.image)
                masks.append(res.mask)
                lines.append(f"image {b}: {len(fs)} face(s) restored at strength {strength:.2f}")
        lines.append("licence: " + manifest.license_text("facerestore_models", restore_model))
        text = "\n".join(lines)
        return {"ui": {"text": [text]}, "result": (from_rgb_uint8(outs), from_mask_arrays(masks), text)}


NODE_CLASS_MAPPINGS = {"I2PFaceRestore": I2PFaceRestore}
NODE_DISPLAY_NAME_MAPPINGS = {"I2PFaceRestore": "I2P Face Restore"}
