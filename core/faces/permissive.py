"""The commercially usable face analyzer: YuNet (OpenCV Zoo, MIT) for boxes and the 5 landmarks, AuraFace
(fal, Apache-2.0) for the 512-d identity embedding.

It fills the same :class:`~.types.Face` values as the InsightFace analyzer, so every downstream node works
unchanged, with two honest differences: there is no gender/age model (``gender`` and ``age`` stay None,
and the gender filter and the auto-prompt template say so), and the embeddings live in AuraFace's space,
not buffalo_l's (``recognizer`` names it, and the identity score refuses to compare across the two).

YuNet runs through OpenCV's own ``cv2.FaceDetectorYN`` (OpenCV is already a dependency): its landmark
order (right eye, left eye, nose, right mouth corner, left mouth corner, of the person) is, in image
coordinates, the InsightFace order the pack aligns with (the eye on the image's left first). AuraFace
takes the same 112 px ArcFace crop as buffalo_l's recognizer and is run by the same InsightFace
``ArcFaceONNX`` wrapper, so both recognizers see identical preprocessing.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from .. import comfy_adapter, onnx_sessions
from ..errors import I2PError
from .photo import ArcFaceEmbedder, as_bgr, detection_sizes
from .types import Face

NODE = "I2P Face Analyzer Loader"
PACK = "YuNet + AuraFace (commercial)"
GROUP = "yunet+auraface"
DETECTOR = ("facedetection", "face_detection_yunet_2023mar.onnx", "yunet-2023mar")
RECOGNIZER = ("insightface", "models/auraface/glintr100.onnx", "auraface-v1")
RECOGNIZER_NAME = "AuraFace v1 (glintr100.onnx, Apache-2.0)"
NMS_THRESHOLD = 0.3
TOP_K = 5000


def _require(folder: str, filename: str, model_id: str) -> Path:
    path = comfy_adapter.find_model(folder, filename)
    if path is None or not path.is_file():
        ids = f"{DETECTOR[2]} {RECOGNIZER[2]}"
        raise I2PError(NODE, "pack", f"the '{PACK}' analyzer needs models/{folder}/{filename}, which is missing.",
                       f"run: python -m ip_to_portrait models download {ids} --comfyui /path/to/ComfyUI "
                       f"(or put the file there by hand; manifest id {model_id}).")
    return path


class PermissiveAnalyzer(ArcFaceEmbedder):
    """YuNet detection + AuraFace embedding, with the interface of :class:`.analysis.FaceAnalyzer`."""

    pack = PACK
    recognizer = RECOGNIZER_NAME
    genderage = None  # no gender/age model: Face.gender / Face.age stay None

    def __init__(self, provider: str = "auto"):
        import cv2
        import onnxruntime as ort
        from insightface.model_zoo.arcface_onnx import ArcFaceONNX

        self.requested = provider
        self.det_path = _require(*DETECTOR)
        self.rec_path = _require(*RECOGNIZER)
        chosen, self.notes = onnx_sessions.resolve_providers(provider, NODE)
        try:
            self.det = cv2.FaceDetectorYN.create(str(self.det_path), "", (320, 320), 0.5, NMS_THRESHOLD, TOP_K)
        except cv2.error as exc:
            raise I2PError(NODE, "pack", f"OpenCV could not load {self.det_path.name} as a YuNet detector: "
                           f"{str(exc).strip().splitlines()[-1]}",
                           "re-download it (the download command verifies sha256); YuNet needs OpenCV >= 4.8 "
                           "for the 2023mar model.") from None
        try:
            session = ort.InferenceSession(str(self.rec_path), providers=chosen)
            self.rec = ArcFaceONNX(model_file=str(self.rec_path), session=session)
        except comfy_adapter.interrupt_exception_types():
            raise
        except Exception as exc:  # a corrupt or truncated .onnx file
            raise I2PError(NODE, "pack", f"could not open {self.rec_path.name} as an AuraFace recognizer: {exc}",
                           "re-download it (the download command verifies sha256).") from None
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------------- reporting
    @property
    def providers(self) -> dict[str, str]:
        return {self.det_path.name: "OpenCV DNN (CPU)", self.rec_path.name: self.rec.session.get_providers()[0]}

    @property
    def device_label(self) -> str:
        return f"YuNet + AuraFace ({self.rec.session.get_providers()[0]})"

    def describe(self) -> str:
        lines = [f"face analyzer '{PACK}'", f"provider requested: {self.requested}"]
        lines += [f"  {name}: {prov}" for name, prov in sorted(self.providers.items())]
        lines.append("  no gender/age model: the gender filter cannot match and the auto-prompt template "
                     "cannot name gender or age")
        lines.append(f"  recognizer: {self.recognizer}; its scores are not comparable with buffalo_l's")
        lines += [f"NOTE: {n}" for n in self.notes]
        return "\n".join(lines)

    # ----------------------------------------------------------------------------------- analysis
    def detect(self, image: np.ndarray, threshold: float = 0.5, det_size: int = 640) -> list[Face]:
        """Every face in ``image`` (RGB uint8) in score order, with its AuraFace embedding.

        YuNet works on the whole image at its own size; it is trained for faces of about 10-300 px, so
        an image whose long side exceeds ``det_size`` is scaled down to it first (and retried at smaller
        sizes down to 320 when nothing is found, as the InsightFace analyzer does).
        """
        bgr = as_bgr(image)
        h, w = bgr.shape[:2]
        sizes = detection_sizes(det_size)
        scales = list(dict.fromkeys(min(1.0, size / max(h, w)) for size in sizes))  # small images: once
        with self._lock:
            rows = np.zeros((0, 15), np.float32)
            for scale in scales:
                rows = self._detect_at(bgr, scale, float(threshold))
                if len(rows):
                    break
            order = np.argsort(-rows[:, 14], kind="stable")
            faces = []
            for i, r in enumerate(rows[order]):
                x, y, bw, bh = (float(v) for v in r[:4])
                kps = r[4:14].reshape(5, 2).astype(np.float32)
                face = Face(bbox=np.array([x, y, x + bw, y + bh], np.float32), kps=kps, det_score=float(r[14]),
                            detection_index=i)
                face.embedding = self._embed_bgr(bgr, kps)
                faces.append(face)
        return faces

    def _detect_at(self, bgr: np.ndarray, scale: float, threshold: float) -> np.ndarray:
        import cv2

        img = bgr if scale >= 1.0 else cv2.resize(bgr, (max(1, round(bgr.shape[1] * scale)),
                                                        max(1, round(bgr.shape[0] * scale))),
                                                  interpolation=cv2.INTER_AREA)
        self.det.setInputSize((img.shape[1], img.shape[0]))
        self.det.setScoreThreshold(threshold)
        _, rows = self.det.detect(img)
        if rows is None or len(rows) == 0:
            return np.zeros((0, 15), np.float32)
        rows = np.asarray(rows, np.float32).reshape(-1, 15).copy()
        rows[:, :14] /= min(scale, 1.0)
        return rows



def refuse_auraface(faces, node: str, input_name: str, model: str) -> None:
    """Models trained on buffalo_l's ArcFace embeddings (FaceID, inswapper) would silently turn AuraFace
    embeddings into a wrong identity: say so instead."""
    if getattr(faces, "recognizer", "") == RECOGNIZER_NAME:
        raise I2PError(node, input_name, f"these faces carry AuraFace embeddings, but {model} was trained on "
                       "buffalo_l's ArcFace embeddings and would produce a different person.",
                       "detect these faces with the buffalo_l analyzer (non-commercial), or use the commercial "
                       "path without it (pre-paste + simple inpaint: the commercial_portrait workflow).")
