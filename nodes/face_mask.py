"""Face masks: BiSeNet face parsing (what gets repainted), or a plain box / ellipse from the detections."""
from __future__ import annotations

import logging

from ..core import comfy_adapter
from ..core.errors import I2PError
from ..core.model_errors import ModelFileMissing
from ..core.faces.types import FACES_TYPE

log = logging.getLogger(__name__)
OUTPUT_CHOICES = ["combined", "per face"]
PARSING_DEFAULT = "parsing_bisenet.pth"

_EXPAND = ("FLOAT", {"default": 0.05, "min": 0.0, "max": 2.0, "step": 0.01,
                     "tooltip": "Grow each face's mask by this fraction of its face size (0.1 = a tenth of the "
                                "face), so small and large faces grow alike."})
_PADDING = ("INT", {"default": 0, "min": -512, "max": 512, "step": 1,
                    "tooltip": "Then grow (+) or shrink (-) the mask by this many pixels."})
_BLUR = ("INT", {"default": 12, "min": 0, "max": 512, "step": 1,
                 "tooltip": "Width in pixels of the soft edge, centred on the mask's border. 0 = hard edge."})
_OUTPUT = (OUTPUT_CHOICES, {"default": "combined",
                            "tooltip": "combined: one mask per image with every selected face. per face: one mask "
                                       "per face, image 0's faces first (mask b*F+i = image b, face i; F = most "
                                       "faces in any image; empty where an image has fewer)."})


def _parsing_models() -> list[str]:
    names = [n for n in comfy_adapter.list_models("facedetection", (".pth", ".pt", ".safetensors"))
             if any(k in n.lower() for k in ("parsing", "bisenet", "79999"))]
    return [PARSING_DEFAULT] + [n for n in names if n != PARSING_DEFAULT]


def faces_for_image(faces, index: int, shape: tuple[int, int], node: str, input_name: str = "faces") -> list:
    """The selected faces of batch image ``index``, scaled if FACES came from a resized copy of it;
    I2PError on ``input_name`` when FACES belongs to another batch or picture."""
    from ..core.faces.follow import same_aspect, scale_faces

    if len(faces) != 1 and index >= len(faces):
        raise I2PError(node, input_name, f"FACES holds {len(faces)} image(s) but the IMAGE batch is larger.",
                       "detect faces on the same IMAGE batch you connect here.")
    fs = faces.for_image(index)
    fh, fw = fs.image_size
    h, w = shape
    if (fh, fw) == (h, w):
        return list(fs.faces)
    if not same_aspect((fh, fw), (h, w)):
        raise I2PError(node, input_name, f"image {index}: faces were detected on a {fw}x{fh} image but this one is "
                       f"{w}x{h}.", "detect faces on the same image (or a resized copy of it).")
    return scale_faces(fs.faces, (fh, fw), (h, w))


def _stack(per_image: list[list], combined: list, mode: str, shape: tuple[int, int]):
    """MASK tensor: one per image (combined) or one per face slot (per face)."""
    import numpy as np

    from ..core.images import from_mask_arrays

    if mode == "combined":
        return from_mask_arrays(combined)
    slots = max((len(m) for m in per_image), default=0)
    if slots == 0:
        return from_mask_arrays([np.zeros(shape, np.float32) for _ in per_image])
    out = []
    for masks in per_image:
        out += list(masks) + [np.zeros(shape, np.float32)] * (slots - len(masks))
    return from_mask_arrays(out)


class I2PFaceParsingMask:
    DESCRIPTION = (
        "Makes the mask of what gets repainted: each selected face is aligned, upscaled to 512x512 and "
        "parsed by BiSeNet (19 face classes), and the parse is mapped back onto the image. Choose which "
        "parts count (hair, neck, ears, glasses, hat), then expand, pad and soften the edge. "
        "parsing_bisenet.pth: MIT licence, but trained on CelebAMask-HQ (non-commercial dataset terms); "
        "I2P Face Box Mask needs no model."
    )
    CATEGORY = "IP-to-Portrait/faces"
    FUNCTION = "make_mask"
    RETURN_TYPES = ("MASK", "IMAGE", "MASK")
    RETURN_NAMES = ("mask", "preview", "hair_mask")
    OUTPUT_TOOLTIPS = (
        "The face mask (1 = repaint), one per image or one per face.",
        "The image with each face's parse painted in colour (skin, hair, eyes, ...).",
        "Only the hair of the selected faces, hard-edged (for sampling hair colour).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The image (batch) the faces were detected in."}),
                "faces": (FACES_TYPE, {"tooltip": "From I2P Detect Faces: which faces to mask."}),
                "parsing_model": (_parsing_models(), {"default": PARSING_DEFAULT,
                                                      "tooltip": "BiSeNet weights in models/facedetection "
                                                                 "(parsing_bisenet.pth or 79999_iter.pth)."}),
                "include_hair": ("BOOLEAN", {"default": False, "tooltip": "Add the hair touching the face."}),
                "include_neck": ("BOOLEAN", {"default": False, "tooltip": "Add the neck below the face."}),
                "include_ears": ("BOOLEAN", {"default": True, "tooltip": "Add ears and earrings."}),
                "include_glasses": ("BOOLEAN", {"default": True, "tooltip": "Add eyeglasses (so they get "
                                                                             "repainted too)."}),
                "include_hat": ("BOOLEAN", {"default": False, "tooltip": "Add a hat touching the hair or face."}),
                "expand": _EXPAND,
                "padding": _PADDING,
                "blur": _BLUR,
                "fill_holes": ("BOOLEAN", {"default": True,
                                           "tooltip": "Fill regions the mask encloses (eyes, mouth, glasses "
                                                      "frames) so the face is one solid area."}),
                "output": _OUTPUT,
            }
        }

    def make_mask(self, image, faces, parsing_model, include_hair, include_neck, include_ears, include_glasses,
                  include_hat, expand, padding, blur, fill_holes, output):
        from ..core.faces import parsing as fp
        from ..core.images import from_mask_arrays, from_rgb_uint8, image_input

        node = "I2P Face Parsing Mask"
        path = comfy_adapter.find_model("facedetection", parsing_model)
        if path is None:
            raise ModelFileMissing(node, "parsing_model", "facedetection", parsing_model, "bisenet-face-parsing")
        parser = fp.load_parser(path)
        images = image_input(image, node, "image")
        options = fp.MaskOptions(hair=include_hair, neck=include_neck, ears=include_ears, glasses=include_glasses,
                                 hat=include_hat, expand=expand, padding=padding, blur=blur, fill_holes=fill_holes)
        per_image = [faces_for_image(faces, b, rgb.shape[:2], node) for b, rgb in enumerate(images)]
        total = sum(len(f) for f in per_image)
        combined, per_face, hair, previews = [], [], [], []
        with comfy_adapter.Progress(max(total, 1), desc="I2P face parsing") as progress:
            for b, (rgb, sel) in enumerate(zip(images, per_image)):
                result = fp.image_masks(rgb, sel, parser, options, on_face=lambda: progress.update(1))
                for note in result.notes:
                    log.warning("[%s] image %d: %s", node, b, note)
                combined.append(result.combined)
                per_face.append(result.per_face)
                hair.append(result.hair)
                previews.append(result.preview)
        shape = images[0].shape[:2]
        return (_stack(per_face, combined, output, shape), from_rgb_uint8(previews), from_mask_arrays(hair))


class I2PFaceBoxMask:
    DESCRIPTION = (
        "A box or ellipse mask from the detected faces, for when face parsing is not wanted (fast, no model). "
        "Expand, padding and blur work as in I2P Face Parsing Mask."
    )
    CATEGORY = "IP-to-Portrait/faces"
    FUNCTION = "make_mask"
    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("mask",)
    OUTPUT_TOOLTIPS = ("The box/ellipse mask (1 = repaint), one per image or one per face.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The image (batch) the faces were detected in (gives the size)."}),
                "faces": (FACES_TYPE, {"tooltip": "From I2P Detect Faces."}),
                "shape": (["ellipse", "box"], {"default": "ellipse",
                                               "tooltip": "ellipse: inscribed in the face box. box: the box."}),
                "expand": ("FLOAT", {"default": 0.2, "min": -0.45, "max": 2.0, "step": 0.01,
                                     "tooltip": "Move each side out by this fraction of the face size "
                                                "(negative moves it in)."}),
                "padding": _PADDING,
                "blur": _BLUR,
                "output": _OUTPUT,
            }
        }

    def make_mask(self, image, faces, shape, expand, padding, blur, output):
        import numpy as np

        from ..core import masks
        from ..core.images import image_input

        node = "I2P Face Box Mask"
        images = image_input(image, node, "image")
        draw = masks.ellipse_mask if shape == "ellipse" else masks.box_mask
        combined, per_face = [], []
        for b, rgb in enumerate(images):
            hw = rgb.shape[:2]
            shapes = [draw(hw, f.bbox, expand * f.size) for f in faces_for_image(faces, b, hw, node)]
            union = np.zeros(hw, bool)
            for m in shapes:
                union |= m
            combined.append(masks.finish(union, padding, blur))
            per_face.append([masks.finish(m, padding, blur) for m in shapes])
        return (_stack(per_face, combined, output, images[0].shape[:2]),)


NODE_CLASS_MAPPINGS = {"I2PFaceParsingMask": I2PFaceParsingMask, "I2PFaceBoxMask": I2PFaceBoxMask}
NODE_DISPLAY_NAME_MAPPINGS = {"I2PFaceParsingMask": "I2P Face Parsing Mask", "I2PFaceBoxMask": "I2P Face Box Mask"}
