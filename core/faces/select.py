"""Choosing which detected faces a graph works on, and in which order.

SCRFD returns faces by score, which means nothing to a user. For a single portrait the user wants "the
main face" (largest); for a couple photo "left person, right person" or an explicit index list such as
"1,0". Everything here is pure Python on :class:`core.face_types.Face` lists, so it is testable without
any model.
"""
from __future__ import annotations

from .types import Face

ORDERS = ("largest", "smallest", "left-right", "right-left", "top-bottom", "bottom-top", "score")
GENDERS = ("any", "female", "male")


class FaceSelectionError(ValueError):
    """The selection asked for faces that are not there (the node turns it into an I2PError)."""


def order_faces(faces: list[Face], order: str = "largest") -> list[Face]:
    """Faces sorted by ``order``; ties keep the detector's (score) order, so results are stable."""
    keys = {
        "largest": lambda f: -f.size,
        "smallest": lambda f: f.size,
        "left-right": lambda f: f.center[0],
        "right-left": lambda f: -f.center[0],
        "top-bottom": lambda f: f.center[1],
        "bottom-top": lambda f: -f.center[1],
        "score": lambda f: -f.det_score,
    }
    if order not in keys:
        raise FaceSelectionError(f"unknown order '{order}'; choose one of {', '.join(ORDERS)}")
    by_detection = sorted(faces, key=lambda f: f.detection_index)
    return sorted(by_detection, key=keys[order])


def parse_indices(indices: str) -> list[int]:
    """"" → [] (all faces), "0" → [0], "1,0" or "1 0" → [1, 0]. Negative numbers count from the end."""
    text = (indices or "").replace(";", ",").replace(" ", ",")
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise FaceSelectionError(
                f"'{part}' is not a face index; write numbers separated by commas, e.g. '0' or '1,0'"
            ) from None
    return out


def select_faces(faces: list[Face], indices: str = "", order: str = "largest", gender: str = "any",
                 min_size: int = 0) -> list[Face]:
    """Filter (minimum size in pixels, gender), order, then pick ``indices`` of that ordered list.

    Indices refer to the list *after* filtering and ordering, which is what the preview image numbers.
    A face without a gender (pack without a gender model) never matches a gender filter.
    """
    if gender not in GENDERS:
        raise FaceSelectionError(f"unknown gender '{gender}'; choose one of {', '.join(GENDERS)}")
    kept = [f for f in faces if f.size >= float(min_size)]
    if gender != "any":
        kept = [f for f in kept if f.gender == gender]
    kept = order_faces(kept, order)
    wanted = parse_indices(indices)
    if not wanted:
        return kept
    out = []
    for i in wanted:
        if not -len(kept) <= i < len(kept):
            raise FaceSelectionError(
                f"face index {i} does not exist: {len(kept)} face(s) left after filtering "
                f"(of {len(faces)} detected), valid indices 0..{len(kept) - 1}"
                if kept else f"face index {i} does not exist: no face left after filtering (of {len(faces)} detected)"
            )
        out.append(kept[i])
    return out
