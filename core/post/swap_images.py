"""The face-swap stage over image batches: plan every pair first, then swap image by image.

Split in two so the node fails on bad input (a wrong index, FACES of another image) before any model
is loaded, and loads no model at all when there is nothing to swap (every target image passed through
by the detect node's ``if_no_face: pass through``, or a source photo without a face). The per-face
work (crop, swap, colour, boost, paste) is :func:`core.post.swap.swap_faces`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..faces import known
from ..faces.follow import faces_on, fingerprint
from ..faces.types import Face, Faces, FaceSet
from ..errors import I2PError
from .swap import NODE, SwapOptions, parse_mapping, swap_faces


@dataclass
class SwapPlan:
    """What will be swapped where: per target image, its faces (where they are on that image) and the
    (source, target) pairs; the source faces flattened over the source batch with their image."""

    faces: list[list[Face]]
    pairs: list[list[tuple[int, int]]]
    sources: list[tuple[np.ndarray, Face]]
    notes: list[list[str]]

    @property
    def total(self) -> int:
        return sum(len(p) for p in self.pairs)


@dataclass
class SwapBatch:
    images: list[np.ndarray]
    seams: list[np.ndarray]
    swapped: list[FaceSet]  # per image: the target faces that received a source face
    lines: list[str] = field(default_factory=list)


def plan_swaps(targets: list[np.ndarray], target_faces: Faces, sources: list[np.ndarray], source_faces: Faces,
               source_indices: str, target_indices: str, analyzer=None, node: str = NODE) -> SwapPlan:
    """Check every input and pair every face before anything runs.

    A target image without a face, or a source batch without any, is passed through unchanged with a
    note (the detect node only lets such images through with ``if_no_face: pass through``). Target
    faces follow their image when it is not the one they were detected on (see core/faces/follow.py).
    """
    if len(target_faces.sets) not in (1, len(targets)):
        raise I2PError(node, "target_faces", f"{len(target_faces.sets)} face sets for {len(targets)} images.",
                       "detect the faces on the same image batch that goes into 'image'.")
    flat = [(sources[min(i, len(sources) - 1)], f) for i, s in enumerate(source_faces.sets) for f in s.faces]
    plan = SwapPlan(faces=[], pairs=[], sources=flat, notes=[])
    for b, rgb in enumerate(targets):
        fset = target_faces.for_image(b)
        notes: list[str] = []
        faces: list[Face] = []
        pairs: list[tuple[int, int]] = []
        if not fset.faces:
            notes.append(f"image {b}: no target face (passed through by I2P Detect Faces), left unchanged")
        elif not flat:
            notes.append(f"image {b}: no source face (the source photo passed through I2P Detect Faces without "
                         "one), left unchanged")
        else:
            faces, follow_notes = faces_on(fset, rgb, analyzer, node, "target_faces", f"image {b}")
            notes += follow_notes
            pairs = parse_mapping(source_indices, target_indices, len(flat), len(faces), node=node)
        plan.faces.append(faces)
        plan.pairs.append(pairs)
        plan.notes.append(notes)
    return plan


def run_swaps(plan: SwapPlan, targets: list[np.ndarray], model, opts: SwapOptions, progress=None) -> SwapBatch:
    """Swap every planned pair, image by image; a source identity is computed once per source face.
    ``progress`` (optional) gets ``update(1)`` per swapped face."""
    identities: dict[int, np.ndarray] = {}
    out = SwapBatch(images=[], seams=[], swapped=[])
    for b, rgb in enumerate(targets):
        pairs = plan.pairs[b]
        out.lines += plan.notes[b]
        if not pairs:
            out.images.append(rgb)
            out.seams.append(np.zeros(rgb.shape[:2], np.float32))
            out.swapped.append(FaceSet(image_size=rgb.shape[:2], faces=[], fingerprint=fingerprint(rgb)))
            continue
        for s, _ in pairs:
            if s not in identities:
                identities[s] = model.source_identity(*plan.sources[s])
        ids = [identities.get(i) for i in range(len(plan.sources))]
        res = swap_faces(rgb, plan.faces[b], ids, pairs, model, opts, progress)
        out.images.append(res.image)
        out.seams.append(res.seam)
        # the swapped faces sit where the target faces were, now on the swapped image, which changed only
        # inside them: later nodes handed it with the target's FACES need not detect again (core/faces/known)
        fp = fingerprint(res.image)
        out.swapped.append(FaceSet(image_size=rgb.shape[:2], faces=res.swapped, fingerprint=fp))
        known.place(fp, plan.faces[b])
        out.lines.append(f"image {b}: " + "; ".join(res.lines))
    return out
