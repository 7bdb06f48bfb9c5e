"""The FACES value handed between nodes (ComfyUI type ``I2P_FACES``).

Detection order is by score, which means nothing to a user; ``FaceSet.faces`` is already in the order
the user selected (largest first by default, or an explicit index list), so downstream nodes take
face 0, face 1, ... in that order: "source face i goes to target face mapping[i]".

Everything is numpy and plain Python so a FACES value pickles, caches and crosses no device.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FACES_TYPE = "I2P_FACES"
ANALYZER_TYPE = "I2P_FACE_ANALYZER"


@dataclass
class Face:
    bbox: np.ndarray  # (4,) float32, x1, y1, x2, y2 in pixels of the analysed image
    kps: np.ndarray  # (5, 2) float32: left eye, right eye, nose, left mouth corner, right mouth corner
    det_score: float
    embedding: np.ndarray | None = None  # (512,) float32, L2-normalised, in the space of Faces.recognizer
    gender: str | None = None  # "female" / "male", where the analyzer has a gender model (YuNet has none)
    age: int | None = None
    landmarks_106: np.ndarray | None = None  # (106, 2) float32 where available
    detection_index: int = 0  # position in the detector's own (score) order

    @property
    def size(self) -> float:
        """Face size in pixels: the geometric mean of box width and height."""
        w = float(self.bbox[2] - self.bbox[0])
        h = float(self.bbox[3] - self.bbox[1])
        return float(np.sqrt(max(w, 0.0) * max(h, 0.0)))

    @property
    def center(self) -> tuple[float, float]:
        return float(self.bbox[0] + self.bbox[2]) / 2, float(self.bbox[1] + self.bbox[3]) / 2


@dataclass
class FaceSet:
    """The selected faces of one image of a batch."""

    image_size: tuple[int, int]  # (height, width) of the image the coordinates refer to
    faces: list[Face] = field(default_factory=list)
    fingerprint: str = ""  # of that image (core/faces/follow.py): later nodes tell whether it changed


@dataclass
class Faces:
    """One FaceSet per image of the IMAGE batch the faces were detected in."""

    sets: list[FaceSet]
    analyzer: str = ""  # e.g. "buffalo_l on CPUExecutionProvider"
    recognizer: str = ""  # the model that made the embeddings; "" = unknown (older saved values)

    def __len__(self) -> int:
        return len(self.sets)

    def for_image(self, index: int) -> FaceSet:
        """The FaceSet of batch image ``index``; a single FaceSet serves every image of a batch."""
        if len(self.sets) == 1:
            return self.sets[0]
        return self.sets[index]
