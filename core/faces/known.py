"""Faces already known on an image, by the image's pixel fingerprint: detection runs once per image.

Two small in-memory tables, both keyed by :func:`core.faces.follow.fingerprint` (BLAKE2b over the
shape and every pixel), so an entry can only ever answer for the exact pixels it was made from:

- detections: what an analyzer found on an image at a threshold and detector size. Several detect
  nodes on the same photo (the couple workflows select person 1 and person 2 from one reference), or a
  re-detection of an image another node already re-detected, then run the detector once.
- placed faces: a node that changes an image *only inside faces it aligned to* (the swap pastes each
  face back through a mask in that face's own frame; the restore likewise) records those faces for the
  image it returns. They are where that node put them, so a later node handed the new image with the
  earlier FACES (restore after swap, score after restore) matches against them instead of running the
  detector again. Only a complete match counts (see :mod:`core.faces.follow`); anything else detects.

Faces are copied in and out, so a caller that edits a Face cannot change what the next one gets.
"""
from __future__ import annotations

import copy
import threading
import weakref
from collections import OrderedDict
from dataclasses import replace

import numpy as np

from .photo import as_rgb
from .types import Face

#: images remembered per analyzer / placed-face entries: a graph touches a handful of images
DETECTIONS_PER_ANALYZER = 8
PLACED = 16

_lock = threading.Lock()
_detections: "weakref.WeakKeyDictionary[object, OrderedDict]" = weakref.WeakKeyDictionary()
_placed: OrderedDict[str, list[Face]] = OrderedDict()


def _put(table: OrderedDict, key, value, limit: int) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > limit:
        table.popitem(last=False)


def detect(analyzer, image: np.ndarray, fp: str, threshold: float = 0.5, det_size: int = 640) -> list[Face]:
    """``analyzer.detect(image, threshold=..., det_size=...)``, run once per (analyzer, pixels,
    threshold, det_size); ``fp`` is the image's ``follow.fingerprint``."""
    rgb = as_rgb(image)
    key = (fp, float(threshold), int(det_size))
    with _lock:
        table = _detections.get(analyzer)
        hit = table.get(key) if table is not None else None
        if hit is not None:
            table.move_to_end(key)
            return copy.deepcopy(hit)
    found = analyzer.detect(rgb, threshold=threshold, det_size=det_size)
    with _lock:
        table = _detections.setdefault(analyzer, OrderedDict())
        _put(table, key, copy.deepcopy(found), DETECTIONS_PER_ANALYZER)
    return found


def place(fp: str, faces: list[Face]) -> None:
    """Record that ``faces`` sit on the image with fingerprint ``fp`` (a node's output that changed only
    inside them). Their identity (embedding, gender, age) is not carried: a swap changed it."""
    if not faces:
        return
    geometry = [copy.deepcopy(replace(f, embedding=None, gender=None, age=None)) for f in faces]
    with _lock:
        _put(_placed, fp, geometry, PLACED)


def placed(fp: str) -> list[Face] | None:
    """The faces a node placed on the image with fingerprint ``fp``, or None."""
    with _lock:
        hit = _placed.get(fp)
        if hit is None:
            return None
        _placed.move_to_end(fp)
        return copy.deepcopy(hit)


def clear() -> None:
    """Forget everything (tests). Nothing else needs it: detections go with their analyzer (weak keys;
    ComfyUI's /free drops the analyzer), and the placed faces are a few bounded geometry entries."""
    with _lock:
        _detections.clear()
        _placed.clear()
