"""Face swap: which source face goes onto which target face, the inswapper_128 model, and the
swap -> (boost) -> colour match -> paste-back loop shared by every swap model.

A swap model (inswapper here, Ghost in :mod:`core.post.ghost`) provides ``crop_size``,
``crop_affine(kps)`` -> (image->crop affine, the 5-point template in crop pixels the face was aligned
to, which places the paste mask), ``source_identity(image, face)`` and ``swap(crop, identity)``. The paste-back is ours, not insightface's ``paste_back=True``: an eroded,
feathered mask limited to the face, so pixels outside it keep their exact values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..faces import align
from ..faces.colour import match_colour
from .. import onnx_sessions
from ..errors import I2PError
from ..model_errors import model_file_errors
from ..paths import display
from ...models import manifest
from ..faces.select import FaceSelectionError, parse_indices
from ..faces.types import Face

NODE = "I2P Face Swap"


# --------------------------------------------------------------------------------------- mapping
def _parse_indices(text: str, input_name: str, node: str) -> list[int] | None:
    """The detect node's index syntax ("1,0", "1 0"); None for empty ("in order")."""
    try:
        return parse_indices(text) or None
    except FaceSelectionError as exc:
        raise I2PError(node, input_name, f"{exc}.", "0 = the first selected face.") from None


def parse_mapping(source: str, target: str, n_source: int, n_target: int, node: str = NODE) -> list[tuple[int, int]]:
    """Pairs (source index, target index): source face ``source[k]`` goes onto target face ``target[k]``.

    Indices count the faces in the order the detect node selected them (flattened over a batch of
    source images). Empty means "0, 1, 2, ..." as long as the other list (or as many as both sides
    have). No genders are involved, so two women or two men swap like any couple.
    """
    if n_source == 0:
        raise I2PError(node, "source_faces", "no face was found in the source image(s).",
                       "use a source photo with a clearly visible face, or lower the detection threshold.")
    if n_target == 0:
        raise I2PError(node, "target_faces", "no face was found in the target image.",
                       "check the target photo or lower the detection threshold of the face detector.")
    src = _parse_indices(source, "source_indices", node)
    tgt = _parse_indices(target, "target_indices", node)
    implied = None  # an empty list takes its length from the other one: that one is to blame
    if src is None and tgt is None:
        n = min(n_source, n_target)
        src, tgt = list(range(n)), list(range(n))
    elif src is None:
        src, implied = list(range(len(tgt))), "target_indices"
    elif tgt is None:
        tgt, implied = list(range(len(src))), "source_indices"
    if len(src) != len(tgt):
        raise I2PError(node, "target_indices",
                       f"{len(src)} source indices ({source!r}) but {len(tgt)} target indices ({target!r}).",
                       "give one target index for each source index, e.g. source '0,1' -> target '1,0'.")
    for name, other, idx, n in (("source_indices", "target_indices", src, n_source),
                                ("target_indices", "source_indices", tgt, n_target)):
        bad = [i for i in idx if i < 0 or i >= n]
        if bad and implied == other:
            given = target if other == "target_indices" else source
            side = "source" if name == "source_indices" else "target"
            raise I2PError(node, other, f"{other} {given!r} lists {len(idx)} face(s), so with {name} empty "
                           f"{len(idx)} {side} faces are used (0..{len(idx) - 1}), but only {n} {side} face(s) "
                           "were selected.", f"list fewer faces in {other}, or give {name} explicitly.")
        if bad:
            raise I2PError(node, name, f"face index {bad[0]} is out of range: only {n} face(s) "
                           f"(indices 0..{n - 1}) were selected.",
                           "use an index the detect node selected, or select more faces there.")
    if len(set(tgt)) != len(tgt):
        raise I2PError(node, "target_indices", f"target face listed twice in {target!r}.",
                       "each target face can receive one source face.")
    return list(zip(src, tgt))


# -------------------------------------------------------------------------------------- inswapper
class InSwapper:
    """insightface's INSwapper graph (inswapper_128, fp32 or fp16), run through our own session cache."""

    crop_size = 128
    license_folder = "insightface"

    def __init__(self, path: str, provider: str = "auto"):
        from insightface.model_zoo import model_zoo

        def factory(p, providers):
            with model_file_errors(NODE, "swap_model", p, "an ONNX graph",
                                   manifest.id_for("insightface", Path(p).name), "insightface"):
                model = model_zoo.get_model(p, providers=providers)
            if model is None or type(model).__name__ != "INSwapper":
                raise I2PError(NODE, "swap_model", f"{display(p, 'insightface')} is not an inswapper graph "
                               "(two inputs at 128x128).", "pick inswapper_128.onnx or inswapper_128.fp16.onnx.")
            return model

        self.path = path
        self.model = onnx_sessions.cached("inswapper", path, provider, factory, NODE)
        self.notes = onnx_sessions.resolve_providers(provider, NODE)[1]
        self.session = self.model.session
        self.provider = onnx_sessions.session_provider(self.session)
        self.emap = np.asarray(self.model.emap, dtype=np.float32)
        inputs = self.session.get_inputs()
        self._names = [i.name for i in inputs]
        self._dtypes = [np.float16 if "float16" in i.type else np.float32 for i in inputs]
        self._output = self.session.get_outputs()[0].name

    def crop_affine(self, kps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """insightface's ``norm_crop`` alignment at 128 (what inswapper was trained on)."""
        return align.arcface_affine(kps, self.crop_size), align.arcface_template(self.crop_size)

    def source_identity(self, image: np.ndarray | None, face: Face) -> np.ndarray:
        if face.embedding is None:
            raise I2PError(NODE, "source_faces", "the source faces carry no ArcFace embedding.",
                           "detect the source faces with an analyzer that has a recognition model (buffalo_l).")
        latent = np.asarray(face.embedding, np.float32).reshape(1, -1)
        latent = latent / max(float(np.linalg.norm(latent)), 1e-12)
        latent = latent @ self.emap
        return latent / max(float(np.linalg.norm(latent)), 1e-12)

    def swap(self, crop: np.ndarray, identity: np.ndarray) -> np.ndarray:
        blob = (crop.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        feeds = {self._names[0]: blob.astype(self._dtypes[0]), self._names[1]: identity.astype(self._dtypes[1])}
        pred = self.session.run([self._output], feeds)[0]
        out = np.asarray(pred[0], np.float32).transpose(1, 2, 0)
        return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)

    def describe(self) -> str:
        text = f"inswapper ({self.path.replace(chr(92), '/').split('/')[-1]}) on {self.provider}"
        return "; ".join([text] + self.notes)


# ------------------------------------------------------------------------------------- the loop
@dataclass
class SwapOptions:
    erode: float = 0.05  # mask shrink, fraction of face height
    blur: float = 0.08  # feather, fraction of face height
    colour_correction: bool = True
    boost: object | None = None  # a face_restore.Restorer: swap, then restore at 512 before pasting
    seam_width: int = 0  # 0 = automatic (6 % of the face size)


@dataclass
class SwapResult:
    image: np.ndarray
    masks: list[np.ndarray] = field(default_factory=list)  # per swapped face, (H, W) blend weight
    seam: np.ndarray | None = None
    swapped: list[Face] = field(default_factory=list)  # target faces that received a source, in mapping order
    lines: list[str] = field(default_factory=list)


def swap_one(image: np.ndarray, target: Face, identity: np.ndarray, model, opts: SwapOptions):
    """Swap one face; returns (new image, its blend mask)."""
    size = model.crop_size
    m, template = model.crop_affine(target.kps)
    crop = align.warp(image, m, size)
    fake = model.swap(crop, identity)
    mask = align.face_mask(size, template, opts.erode, opts.blur)
    if opts.colour_correction:
        fake = match_colour(fake, crop, mask)
    if opts.boost is not None:
        # carry the low-res swap into the restorer's 512 FFHQ frame, restore there, paste the 512 result
        big = opts.boost.size
        m_big = align.ffhq_affine(target.kps, big)
        to_big = align.compose(m_big, align.invert(m))
        base = align.warp(image, m_big, big)
        fake_big = align.warp(fake, to_big, big, smooth=True)  # enlarging: bicubic
        mask_big = align.warp(mask, to_big, big, border="zero")
        merged = np.clip(np.rint(base + (fake_big.astype(np.float32) - base) * mask_big[..., None]), 0, 255)
        fake, m, mask = opts.boost.restore_crop(merged.astype(np.uint8)), m_big, mask_big
    pasted = align.paste(image, fake, m, mask)
    return pasted.image, pasted.mask


def swap_faces(image: np.ndarray, targets: list[Face], identities: list[np.ndarray],
               pairs: list[tuple[int, int]], model, opts: SwapOptions, progress=None) -> SwapResult:
    """Apply every (source, target) pair to one image, in mapping order."""
    out = image
    result = SwapResult(image)
    for s, t in pairs:
        out, mask = swap_one(out, targets[t], identities[s], model, opts)
        result.masks.append(mask)
        result.swapped.append(targets[t])
        result.lines.append(f"source face {s} -> target face {t}")
        if progress is not None:
            progress.update(1)
    result.image = out
    if result.masks:
        width = opts.seam_width or max(4, int(round(0.06 * float(np.mean([targets[t].size for _, t in pairs])))))
        result.seam = align.seam_band(result.masks, width)
    else:
        result.seam = np.zeros(image.shape[:2], np.float32)
    return result
