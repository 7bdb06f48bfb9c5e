"""Face detection and identity embedding with an InsightFace pack (``buffalo_l`` by default).

InsightFace 2.x loads a pack from a directory we hand it, so nothing ever downloads: a missing folder or
file is our error, named with the download command. The analyzer reports the execution provider each
ONNX session *really* got, because "I installed CUDA and it silently runs on CPU" is this ecosystem's
most common complaint.

Images in this module are RGB uint8 (the pack's convention); InsightFace's models want BGR, so the
conversion happens here and nowhere else.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from .. import comfy_adapter, onnx_sessions
from ..errors import I2PError, unreadable
from ..paths import display
from .select import GENDERS, ORDERS, FaceSelectionError, select_faces  # noqa: F401 (re-exported)
from .types import Face

NODE = "I2P Face Analyzer Loader"
DEFAULT_PACK = "buffalo_l"
#: files of a pack: the ones without which the stage cannot run, and the optional extras we use
REQUIRED_FILES = {"buffalo_l": ("det_10g.onnx", "w600k_r50.onnx")}
TASKS = ("detection", "recognition", "genderage", "landmark_2d_106")
MIN_RETRY_SIZE = 320
RETRY_STEP = 64

_cache: dict[tuple, "FaceAnalyzer"] = {}
_cache_lock = threading.Lock()


def list_packs() -> list[str]:
    """InsightFace packs (sub-folders of ``models/insightface/models`` holding .onnx files)."""
    found = set()
    for root in comfy_adapter.folder_dirs("insightface"):
        base = Path(root) / "models"
        if base.is_dir():
            found |= {p.name for p in base.iterdir() if p.is_dir() and any(p.glob("*.onnx"))}
    return [DEFAULT_PACK] + sorted(found - {DEFAULT_PACK})


def _missing_pack_error(pack: str, missing: list[str] | None) -> I2PError:
    files = missing or list(REQUIRED_FILES.get(pack, ("*.onnx",)))
    if pack == DEFAULT_PACK:
        ids = " ".join(f"buffalo_l-{Path(f).stem}" for f in
                       ("det_10g.onnx", "w600k_r50.onnx", "genderage.onnx", "2d106det.onnx", "1k3d68.onnx"))
        how = f"run: python -m ip_to_portrait models download {ids} --comfyui /path/to/ComfyUI"
    else:
        how = f"put the {pack} pack's .onnx files into that folder"
    where = f"models/insightface/models/{pack}"
    problem = (f"the face-analysis pack folder {where} was not found." if missing is None
               else f"{where} is missing {', '.join(files)}.")
    misplaced = comfy_adapter.find_model("insightface", pack)
    if missing is None and misplaced is not None and misplaced.is_dir():
        problem += (f" There is a folder {display(misplaced, 'insightface')}: InsightFace packs belong one level "
                    f"deeper, in {where}.")
    return I2PError(NODE, "pack", problem, how + ".")


def _unreadable_pack_error(pack_dir: Path, exc: Exception) -> I2PError:
    """InsightFace stops at the first graph it cannot open without saying which: open each one on the CPU
    (only on this error path) to name the damaged file and its download id."""
    import onnxruntime as ort

    from ...models import manifest

    bad = pack_dir
    for path in sorted(pack_dir.glob("*.onnx")):
        try:
            ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception:  # noqa: BLE001 - the same failure InsightFace hit, now with a file name
            bad = path
            break
    if bad == pack_dir:
        return unreadable(NODE, "pack", pack_dir, "an InsightFace pack", exc, folder="insightface")
    return unreadable(NODE, "pack", bad, "an ONNX graph", exc, manifest.id_for("insightface", bad.name),
                      "insightface")


def resolve_providers(provider: str) -> tuple[list[str], list[str]]:
    """The onnxruntime provider list to request, plus notes (the pack's one policy, onnx_sessions)."""
    return onnx_sessions.resolve_providers(provider, NODE)


class FaceAnalyzer:
    """One loaded InsightFace pack: detector, ArcFace, and gender/age and 106-point landmarks if present."""

    def __init__(self, pack: str = DEFAULT_PACK, provider: str = "auto", threads: int = 0):
        pack_dir = comfy_adapter.find_model("insightface", f"models/{pack}")
        if pack_dir is None or not pack_dir.is_dir():
            raise _missing_pack_error(pack, None)
        required = REQUIRED_FILES.get(pack, ())
        missing = [f for f in required if not (pack_dir / f).is_file()]
        if missing or not any(pack_dir.glob("*.onnx")):
            raise _missing_pack_error(pack, missing)
        self.pack = pack
        self.pack_dir = pack_dir
        self.requested = provider
        chosen, self.notes = resolve_providers(provider)
        import onnxruntime as ort
        from insightface.app import FaceAnalysis

        options = ort.SessionOptions()
        if threads > 0:  # benchmarks pin the thread count; 0 = onnxruntime's default (all cores)
            options.intra_op_num_threads = int(threads)
        try:
            self.app = FaceAnalysis(name=str(pack_dir), root=str(pack_dir.parent.parent),
                                    allowed_modules=list(TASKS), providers=chosen, sess_options=options)
        except AssertionError:
            raise I2PError(NODE, "pack", f"models/insightface/models/{pack} has no face detector InsightFace "
                           "recognises.", "use a complete pack such as buffalo_l.") from None
        except comfy_adapter.interrupt_exception_types():
            raise
        except Exception as exc:  # a corrupt or truncated .onnx file: name that file
            raise _unreadable_pack_error(pack_dir, exc) from None
        self.app.prepare(ctx_id=-1 if chosen == ["CPUExecutionProvider"] else 0, det_size=(640, 640))
        models = self.app.models
        self.det = models["detection"]
        self.rec = models.get("recognition")
        if self.rec is None:
            raise I2PError(NODE, "pack", f"models/insightface/models/{pack} has no ArcFace recognition model.",
                           "use a complete pack such as buffalo_l.")
        self.genderage = models.get("genderage")
        self.landmark = models.get("landmark_2d_106")
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------------- reporting
    @property
    def providers(self) -> dict[str, str]:
        """Model file → the execution provider its session really runs on."""
        out = {}
        for model in self.app.models.values():
            session = getattr(model, "session", None)
            got = session.get_providers() if session is not None else ["?"]
            out[Path(model.model_file).name] = got[0]
        return out

    @property
    def device_label(self) -> str:
        used = sorted(set(self.providers.values()))
        return f"{self.pack} on {', '.join(used)}"

    def describe(self) -> str:
        lines = [f"InsightFace pack '{self.pack}' ({display(self.pack_dir, 'insightface')})", f"provider requested: {self.requested}"]
        lines += [f"  {name}: {prov}" for name, prov in sorted(self.providers.items())]
        if self.genderage is None:
            lines.append("  no gender/age model: the gender filter cannot match")
        wants_gpu = self.requested not in ("auto", "CPU")
        if wants_gpu and any(p == "CPUExecutionProvider" for p in self.providers.values()):
            lines.append(f"WARNING: {self.requested} was requested but a session fell back to CPU.")
        lines += [f"NOTE: {n}" for n in self.notes]
        return "\n".join(lines)

    # ----------------------------------------------------------------------------------- analysis
    def detect(self, image: np.ndarray, threshold: float = 0.5, det_size: int = 640) -> list[Face]:
        """Every face in ``image`` (RGB uint8), in detector (score) order, with embedding and attributes.

        When nothing is found at ``det_size`` the detector is retried at smaller sizes (steps of 64 down
        to 320): large faces in small images are often missed at 640 and found at 320.
        """
        from insightface.app.common import Face as IFace

        bgr = np.ascontiguousarray(_as_rgb(image)[:, :, ::-1])
        det_size = max(32, int(det_size) // 32 * 32)
        sizes = [det_size] + list(range(det_size - RETRY_STEP, MIN_RETRY_SIZE - 1, -RETRY_STEP))
        with self._lock:
            bboxes = np.zeros((0, 5), np.float32)
            kpss = None
            for size in sizes:
                bboxes, kpss = self.det.detect(bgr, input_size=(size, size), det_thresh=float(threshold))
                if len(bboxes):
                    break
            faces = []
            for i in range(len(bboxes)):
                kps = kpss[i].astype(np.float32) if kpss is not None else None
                if kps is None:
                    continue  # a detector without landmarks cannot align a face
                iface = IFace(bbox=bboxes[i, :4], kps=kps, det_score=float(bboxes[i, 4]))
                face = Face(bbox=bboxes[i, :4].astype(np.float32), kps=kps, det_score=float(bboxes[i, 4]),
                            detection_index=i)
                face.embedding = self._embed_bgr(bgr, kps)
                if self.genderage is not None:
                    gender, age = self.genderage.get(bgr, iface)
                    face.gender = "male" if int(gender) == 1 else "female"
                    face.age = int(age)
                if self.landmark is not None:
                    face.landmarks_106 = np.asarray(self.landmark.get(bgr, iface), np.float32)[:, :2]
                faces.append(face)
        return faces

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        """ArcFace embedding (512,) of ``face`` in ``image`` (RGB uint8), L2-normalised."""
        bgr = np.ascontiguousarray(_as_rgb(image)[:, :, ::-1])
        with self._lock:
            return self._embed_bgr(bgr, np.asarray(face.kps, np.float32))

    def _embed_bgr(self, bgr: np.ndarray, kps: np.ndarray) -> np.ndarray:
        crop = aligned_crop(bgr, kps, self.rec.input_size[0])
        feat = np.asarray(self.rec.get_feat(crop), np.float32).reshape(-1)
        norm = float(np.linalg.norm(feat))
        return feat / norm if norm > 0 and np.isfinite(norm) else np.zeros_like(feat)


def aligned_crop(image: np.ndarray, kps: np.ndarray, size: int) -> np.ndarray:
    """InsightFace's reference alignment (``norm_crop``), without its scikit-image deprecation noise."""
    import warnings

    from insightface.utils import face_align

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return face_align.norm_crop(image, landmark=np.asarray(kps, np.float32), image_size=int(size))


def _as_rgb(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return arr


def load_analyzer(pack: str = DEFAULT_PACK, provider: str = "auto") -> FaceAnalyzer:
    """A cached analyzer per (pack, provider, folder): sessions are expensive to create."""
    pack_dir = comfy_adapter.find_model("insightface", f"models/{pack}")
    key = (pack, provider, str(pack_dir))
    with _cache_lock:
        analyzer = _cache.get(key)
        if analyzer is None:
            analyzer = FaceAnalyzer(pack, provider)
            _cache[key] = analyzer
        return analyzer


def draw_faces(image: np.ndarray, faces: list[Face]) -> np.ndarray:
    """A preview: box, 5 landmarks and the selection index of each face (RGB uint8 in and out)."""
    import cv2

    out = np.ascontiguousarray(_as_rgb(image).copy())
    h, w = out.shape[:2]
    thick = max(1, round(min(h, w) / 300))
    colors = ((0, 255, 0), (255, 160, 0), (0, 200, 255), (255, 0, 255), (255, 255, 0))
    for i, face in enumerate(faces):
        color = colors[i % len(colors)]
        x1, y1, x2, y2 = (int(round(v)) for v in face.bbox)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick)
        for (px, py) in np.asarray(face.kps).reshape(-1, 2):
            cv2.circle(out, (int(round(px)), int(round(py))), thick + 1, (255, 0, 0), -1)
        label = str(i)
        if face.gender:
            label += f" {face.gender[0].upper()}{face.age if face.age is not None else ''}"
        scale = max(0.4, min(h, w) / 700)
        cv2.putText(out, label, (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, scale, color,
                    max(1, thick), cv2.LINE_AA)
    return out
