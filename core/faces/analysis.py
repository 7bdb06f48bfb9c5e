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
from ..errors import I2PError
from ..model_errors import download_command, unreadable
from ..paths import display
from .select import GENDERS, ORDERS, FaceSelectionError, select_faces  # noqa: F401 (re-exported)
from .photo import ArcFaceEmbedder, as_bgr, as_rgb, detection_sizes
from .types import Face

NODE = "I2P Face Analyzer Loader"
DEFAULT_PACK = "buffalo_l"
#: files of a pack: the ones without which the stage cannot run, and the optional extras we use
REQUIRED_FILES = {"buffalo_l": ("det_10g.onnx", "w600k_r50.onnx")}
TASKS = ("detection", "recognition", "genderage", "landmark_2d_106")

_cache: dict[tuple, "FaceAnalyzer"] = comfy_adapter.ResidentCache("face analyzers")
_cache_lock = threading.Lock()


def list_packs() -> list[str]:
    """buffalo_l, the permissive YuNet + AuraFace analyzer, then other InsightFace packs (sub-folders of
    ``models/insightface/models`` holding .onnx files). AuraFace's own folder is not offered as an
    InsightFace pack: loaded that way it would run the non-commercial SCRFD that fal ships next to it."""
    from .permissive import PACK

    found = set()
    for root in comfy_adapter.folder_dirs("insightface"):
        base = Path(root) / "models"
        if base.is_dir():
            found |= {p.name for p in base.iterdir() if p.is_dir() and any(p.glob("*.onnx"))}
    return [DEFAULT_PACK, PACK] + sorted(found - {DEFAULT_PACK, "auraface"})


def _missing_pack_error(pack: str, missing: list[str] | None) -> I2PError:
    files = missing or list(REQUIRED_FILES.get(pack, ("*.onnx",)))
    if pack == DEFAULT_PACK:
        ids = " ".join(f"buffalo_l-{Path(f).stem}" for f in
                       ("det_10g.onnx", "w600k_r50.onnx", "genderage.onnx", "2d106det.onnx", "1k3d68.onnx"))
        how = f"run: {download_command(ids)}"
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
    model_id = manifest.id_for("insightface", f"models/{pack_dir.name}/{bad.name}")  # a file of this pack only
    return unreadable(NODE, "pack", bad, "an ONNX graph", exc, model_id, "insightface")


def resolve_providers(provider: str) -> tuple[list[str], list[str]]:
    """The onnxruntime provider list to request, plus notes (the pack's one policy, onnx_sessions)."""
    return onnx_sessions.resolve_providers(provider, NODE)


class FaceAnalyzer(ArcFaceEmbedder):
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
    def recognizer(self) -> str:
        """Which model made the embeddings: scores of different recognizers are not comparable."""
        name = Path(self.rec.model_file).name
        return f"buffalo_l ArcFace ({name}, non-commercial)" if self.pack == DEFAULT_PACK else f"{self.pack} {name}"

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

        bgr = as_bgr(image)
        sizes = detection_sizes(det_size)
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



def load_analyzer(pack: str = DEFAULT_PACK, provider: str = "auto"):
    """A cached analyzer per (pack, provider, files): sessions are expensive to create. ``pack`` is an
    InsightFace pack folder, or the permissive YuNet + AuraFace pair."""
    from .permissive import DETECTOR, PACK, RECOGNIZER, PermissiveAnalyzer

    if pack == PACK:
        where = tuple(str(comfy_adapter.find_model(f, n)) for f, n, _ in (DETECTOR, RECOGNIZER))
        make = lambda: PermissiveAnalyzer(provider)  # noqa: E731
    else:
        where = (str(comfy_adapter.find_model("insightface", f"models/{pack}")),)
        make = lambda: FaceAnalyzer(pack, provider)  # noqa: E731
    key = (pack, provider, where)
    with _cache_lock:
        analyzer = _cache.get(key)
        if analyzer is None:
            analyzer = make()
            _cache[key] = analyzer
        return analyzer


def draw_faces(image: np.ndarray, faces: list[Face]) -> np.ndarray:
    """A preview: box, 5 landmarks and the selection index of each face (RGB uint8 in and out)."""
    import cv2

    out = np.ascontiguousarray(as_rgb(image).copy())
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
