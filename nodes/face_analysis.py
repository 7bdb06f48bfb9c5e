"""Face analysis nodes: load an InsightFace pack, detect and select faces (FACES for every later stage)."""
from __future__ import annotations

from ..core import comfy_adapter
from ..core.errors import I2PError
from ..core.faces.select import GENDERS, ORDERS
from ..core.faces.types import ANALYZER_TYPE, FACES_TYPE
from ..core.onnx_sessions import PROVIDER_CHOICES

NO_FACE_CHOICES = ["error", "pass through"]


def _packs() -> list[str]:
    from ..core.faces.analysis import list_packs
    from ..core.faces.permissive import PACK

    try:
        return list_packs()
    except OSError:
        return ["buffalo_l", PACK]


class I2PFaceAnalyzerLoader:
    DESCRIPTION = (
        "Loads the face analyzer: an InsightFace pack (buffalo_l: SCRFD detector, ArcFace identity, gender/age, "
        "landmarks; NON-COMMERCIAL licence) from models/insightface/models/<pack>, or 'YuNet + AuraFace "
        "(commercial)': YuNet (MIT) detection and AuraFace (Apache-2.0) identity, no gender/age. Reports the "
        "execution provider each model really runs on and the licence of each file."
    )
    CATEGORY = "IP-to-Portrait/faces"
    FUNCTION = "load"
    RETURN_TYPES = (ANALYZER_TYPE, "STRING")
    RETURN_NAMES = ("analyzer", "info")
    OUTPUT_TOOLTIPS = (
        "The loaded face analyzer, for I2P Detect Faces and the identity nodes.",
        "Which provider (CPU, CUDA, ...) each model file really got, and the pack's licence.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "pack": (_packs(), {"default": "buffalo_l",
                                    "tooltip": "buffalo_l (what IPAdapter_plus and ReActor use; non-commercial), "
                                               "'YuNet + AuraFace (commercial)' (facedetection/"
                                               "face_detection_yunet_2023mar.onnx + insightface/models/auraface/"
                                               "glintr100.onnx), or another folder under "
                                               "models/insightface/models."}),
                "provider": (PROVIDER_CHOICES, {"default": "auto",
                                                "tooltip": "ONNX execution provider. auto = the best one this "
                                                           "onnxruntime offers. CUDA needs onnxruntime-gpu."}),
            }
        }

    def load(self, pack: str, provider: str):
        from ..core.faces.analysis import load_analyzer
        from ..models import manifest

        from ..core.faces.permissive import DETECTOR, PACK, RECOGNIZER

        analyzer = load_analyzer(pack, provider)
        if pack == PACK:
            licence = "\n  ".join(manifest.license_text(folder, name) for folder, name, _ in (DETECTOR, RECOGNIZER))
        elif pack == "buffalo_l":
            licence = manifest.license_text("insightface", f"models/{pack}/det_10g.onnx")
        else:
            licence = f"{pack}: InsightFace pack - check its licence (InsightFace models are non-commercial)."
        text = analyzer.describe() + "\nlicence: " + licence
        return {"ui": {"text": [text]}, "result": (analyzer, text)}


class I2PDetectFaces:
    DESCRIPTION = (
        "Finds the faces in every image of the batch, computes their ArcFace identity embeddings, and selects "
        "which ones later nodes work on and in which order (largest first, left to right, an index list such "
        "as '1,0', ...). The preview shows each selected face with its index."
    )
    CATEGORY = "IP-to-Portrait/faces"
    FUNCTION = "detect"
    RETURN_TYPES = (FACES_TYPE, "IMAGE", "STRING")
    RETURN_NAMES = ("faces", "preview", "info")
    OUTPUT_TOOLTIPS = (
        "The selected faces of every image, in selection order: face 0, face 1, ...",
        "The images with each selected face's box, landmarks and index drawn.",
        "One line per image: faces found, faces selected, sizes, scores, gender/age.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "analyzer": (ANALYZER_TYPE, {"tooltip": "From I2P Face Analyzer Loader."}),
                "image": ("IMAGE", {"tooltip": "One image or a batch; each image is analysed on its own."}),
                "order": (list(ORDERS), {"default": "largest",
                                         "tooltip": "Order of the selected faces. For a couple photo "
                                                    "'left-right' makes face 0 the left person."}),
                "indices": ("STRING", {"default": "",
                                       "tooltip": "Which faces to keep, as positions in that order: '0' = the "
                                                  "first, '1,0' = second then first. Empty = all."}),
                "gender": (list(GENDERS), {"default": "any",
                                           "tooltip": "Keep only faces the gender model reads as this. Needs an "
                                                      "analyzer with a gender model (buffalo_l); YuNet + AuraFace "
                                                      "has none."}),
                "min_size": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 1,
                                     "tooltip": "Ignore faces smaller than this (pixels, geometric mean of "
                                                "box width and height)."}),
                "threshold": ("FLOAT", {"default": 0.5, "min": 0.05, "max": 0.99, "step": 0.01,
                                        "tooltip": "Detection confidence needed. Lower finds more (and "
                                                   "more false) faces."}),
                "det_size": ("INT", {"default": 640, "min": 128, "max": 2048, "step": 32,
                                     "tooltip": "Detector input size. If nothing is found, smaller sizes "
                                                "down to 320 are tried automatically."}),
                "if_no_face": (NO_FACE_CHOICES, {"default": "error",
                                                 "tooltip": "error: stop with a message naming the image. "
                                                            "pass through: continue with no face for that "
                                                            "image (later nodes leave it unchanged)."}),
            }
        }

    def detect(self, analyzer, image, order, indices, gender, min_size, threshold, det_size, if_no_face):
        from ..core.faces.analysis import FaceSelectionError, draw_faces, select_faces
        from ..core.faces import known
        from ..core.faces.follow import fingerprint
        from ..core.faces.select import parse_indices
        from ..core.faces.types import Faces, FaceSet
        from ..core.images import from_rgb_uint8, image_input

        node = "I2P Detect Faces"
        if not hasattr(analyzer, "detect"):
            raise I2PError(node, "analyzer", "this is not a face analyzer.",
                           "connect the output of I2P Face Analyzer Loader.")
        if gender != "any" and getattr(analyzer, "genderage", None) is None:
            raise I2PError(node, "gender", f"the analyzer '{getattr(analyzer, 'pack', '?')}' has no gender model, "
                           f"so gender='{gender}' cannot tell anyone apart (it would guess).",
                           "set gender to 'any' and choose the faces with 'order' and 'indices', or use buffalo_l.")
        images = image_input(image, node, "image")
        try:
            parse_indices(indices)
        except FaceSelectionError as exc:
            raise I2PError(node, "indices", f"{exc}.", "leave it empty for all faces, or write e.g. '0' or '1,0'.") from None
        sets, previews, lines = [], [], []
        with comfy_adapter.Progress(len(images), desc="I2P detect faces") as progress:
            for b, rgb in enumerate(images):
                fp = fingerprint(rgb)
                found = known.detect(analyzer, rgb, fp, threshold=threshold, det_size=det_size)
                try:  # no face at all (or none left after the filters) is the photo's problem, not 'indices'
                    kept = select_faces(found, "", order, gender, min_size)
                    chosen = select_faces(found, indices, order, gender, min_size) if kept else []
                except FaceSelectionError as exc:
                    raise I2PError(node, "indices", f"image {b} of the batch: {exc}.",
                                   "change 'indices', 'gender' or 'min_size', or look at the preview.") from None
                if not chosen and if_no_face == "error":
                    if not found:
                        culprit, why, fix = "image", "no face was detected", \
                            "use a photo with a clearly visible face or lower 'threshold'"
                    else:
                        big = [f for f in found if f.size >= float(min_size)]
                        culprit = "min_size" if not big else "gender"
                        why = (f"{len(found)} face(s) detected but none passed gender='{gender}', "
                               f"min_size={min_size}")
                        fix = f"relax '{culprit}' (look at the preview)"
                    raise I2PError(node, culprit, f"image {b} of the batch: {why}.",
                                   f"{fix}, or set if_no_face to 'pass through' to leave such images unchanged.")
                sets.append(FaceSet(image_size=rgb.shape[:2], faces=chosen, fingerprint=fp))
                preview = draw_faces(rgb, chosen)
                previews.append(preview)
                desc = ", ".join(
                    f"#{i}: {f.size:.0f}px score {f.det_score:.2f}"
                    + (f" {f.gender} {f.age}" if f.gender else "") for i, f in enumerate(chosen))
                lines.append(f"image {b}: {len(found)} found, {len(chosen)} selected" + (f" ({desc})" if desc else ""))
                from PIL import Image

                progress.update(1, preview=Image.fromarray(preview))
        faces = Faces(sets=sets, analyzer=analyzer.device_label, recognizer=getattr(analyzer, "recognizer", ""))
        return (faces, from_rgb_uint8(previews), "\n".join(lines))


NODE_CLASS_MAPPINGS = {
    "I2PFaceAnalyzerLoader": I2PFaceAnalyzerLoader,
    "I2PDetectFaces": I2PDetectFaces,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "I2PFaceAnalyzerLoader": "I2P Face Analyzer Loader",
    "I2PDetectFaces": "I2P Detect Faces",
}
