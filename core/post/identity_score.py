"""Identity score: cosine similarity of ArcFace embeddings between each result face and the source
face that was put there, so a run can be judged by a number and not only by eye.

Typical buffalo_l values: the same person in two photos scores about 0.4-0.8, different people below
0.2; a good swap keeps its source above ~0.4.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..faces.types import Face


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-12 or nb < 1e-12:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


@dataclass
class Score:
    source_index: int
    target_index: int
    similarity: float


def score_pairs(result_image: np.ndarray, result_faces: list[Face], source_faces: list[Face],
                pairs: list[tuple[int, int]], embed: Callable[[np.ndarray, Face], np.ndarray]) -> list[Score]:
    """``embed(image, face)`` is the analyzer's ArcFace on the aligned crop (``FaceAnalyzer.embed``);
    each result face is embedded where it sits in the result image."""
    scores = []
    for s, t in pairs:
        src = source_faces[s].embedding
        if src is None:
            raise ValueError(f"source face {s} has no embedding")
        scores.append(Score(s, t, cosine(embed(result_image, result_faces[t]), src)))
    return scores


def summarise(scores: list[Score], reduce: str = "mean") -> tuple[float, str]:
    """(FLOAT output, one text line per face)."""
    if not scores:
        return 0.0, "no face pairs scored"
    values = [s.similarity for s in scores]
    value = float(np.mean(values)) if reduce == "mean" else float(values[0])
    lines = [f"target face {s.target_index} vs source face {s.source_index}: {s.similarity:.3f}" for s in scores]
    lines.append(f"{reduce}: {value:.3f}")
    return value, "\n".join(lines)
