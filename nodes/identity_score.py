"""I2P Identity Score: ArcFace cosine similarity between each result face and its source face."""
from __future__ import annotations

from ..core.errors import I2PError
from ..core.faces.types import ANALYZER_TYPE, FACES_TYPE
from ..models import manifest

NODE = "I2P Identity Score"


class I2PIdentityScore:
    DESCRIPTION = (
        "Judges a result by a number: the cosine similarity of identity embeddings (the analyzer's "
        "recognition model: buffalo_l ArcFace, NON-COMMERCIAL, or AuraFace, Apache-2.0) between each face of "
        "the result and the source face that was put there. buffalo_l: same person ~0.4-0.8, different people "
        "below ~0.2. Scores of different recognizers are not comparable; the report names the one used."
    )
    CATEGORY = "IP-to-Portrait/post"
    FUNCTION = "score"
    OUTPUT_NODE = True
    RETURN_TYPES = ("FLOAT", "STRING")
    RETURN_NAMES = ("score", "report")
    OUTPUT_TOOLTIPS = (
        "The mean similarity over the scored faces (or the first face's, see 'reduce').",
        "One line per face pair, plus the recognizer that made the score and its licence.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "analyzer": (ANALYZER_TYPE, {"tooltip": "From I2P Face Analyzer Loader (its ArcFace model embeds "
                                                        "the result faces)."}),
                "image": ("IMAGE", {"tooltip": "The result image(s)."}),
                "faces": (FACES_TYPE, {"tooltip": "Where the result faces are: the target's I2P Detect Faces "
                                                  "output. When the result image differs from the one they were "
                                                  "detected on, the faces are detected again on it with 'analyzer' "
                                                  "and matched by overlap (an inpaint can move a face a little)."}),
                "source_faces": (FACES_TYPE, {"tooltip": "The source faces (their embeddings are the reference)."}),
                "source_indices": ("STRING", {"default": "", "tooltip": "Same mapping as the swap node: source "
                                              "faces, e.g. '0,1'. Empty = 0,1,..."}),
                "target_indices": ("STRING", {"default": "", "tooltip": "Same mapping as the swap node: result "
                                              "face for each source, e.g. '1,0'. Empty = same order."}),
                "reduce": (["mean", "first"], {"default": "mean", "tooltip": "FLOAT output: mean over all "
                                               "scored faces, or the first pair's score."}),
            }
        }

    def score(self, analyzer, image, faces, source_faces, source_indices, target_indices, reduce):
        from ..core.faces.follow import faces_on
        from ..core.faces.types import Faces
        from ..core.images import image_input
        from ..core.post.identity_score import score_pairs, summarise
        from ..core.post.swap import parse_mapping

        if not hasattr(analyzer, "embed"):
            raise I2PError(NODE, "analyzer", "this is not a face analyzer.", "connect I2P Face Analyzer Loader.")
        for name, value in (("faces", faces), ("source_faces", source_faces)):
            if not isinstance(value, Faces):
                raise I2PError(NODE, name, "this is not a FACES value.", "connect I2P Detect Faces' faces output.")
        images = image_input(image, NODE, "image")
        recognizer = getattr(analyzer, "recognizer", "")
        made_by = getattr(source_faces, "recognizer", "")
        if recognizer and made_by and made_by != recognizer:
            raise I2PError(NODE, "source_faces", f"the source faces were embedded by {made_by} but this analyzer's "
                           f"recognizer is {recognizer}: their embeddings live in different spaces.",
                           "detect the source faces with the same I2P Face Analyzer Loader you connect here.")
        if len(faces.sets) not in (1, len(images)):
            raise I2PError(NODE, "faces", f"FACES holds {len(faces.sets)} image(s) but the IMAGE batch has "
                           f"{len(images)}.", "detect faces on the same IMAGE batch you connect here.")
        flat = [f for s in source_faces.sets for f in s.faces]
        if any(f.embedding is None for f in flat):
            raise I2PError(NODE, "source_faces", "the source faces carry no embedding.",
                           "detect them with an analyzer that has a recognition model.")
        all_scores, lines = [], []
        for b, rgb in enumerate(images):
            fset = faces.for_image(b)
            if not fset.faces:
                lines.append(f"image {b}: no face to score (passed through by I2P Detect Faces)")
                continue
            if not flat:
                lines.append(f"image {b}: no source face to compare with (the source photo passed through "
                             "I2P Detect Faces without one)")
                continue
            # the result faces where they are now: an inpaint may have moved them a few pixels
            result_faces, follow = faces_on(fset, rgb, analyzer if hasattr(analyzer, "detect") else None, NODE,
                                            "faces", f"image {b}", resized_ok=True)
            lines += follow
            pairs = parse_mapping(source_indices, target_indices, len(flat), len(result_faces), node=NODE)
            scores = score_pairs(rgb, result_faces, flat, pairs, analyzer.embed)
            all_scores += scores
            _, text = summarise(scores, reduce)
            lines.append(f"image {b}:\n" + text)
        value, _ = summarise(all_scores, reduce)
        if not all_scores:
            lines.append("nothing scored: score 0.0 means 'not scored' here, not 'a different person'")
        describe = analyzer.describe() if hasattr(analyzer, "describe") else str(analyzer)
        lines.append(f"score ({reduce}): {value:.3f} by {recognizer or 'the analyzer recognizer'} "
                     "(only comparable with scores of the same recognizer)")
        lines.append(f"analyzer: {describe}; licence: " + _recognizer_licence(analyzer))
        text = "\n".join(lines)
        return {"ui": {"text": [text]}, "result": (value, text)}


def _recognizer_licence(analyzer) -> str:
    """The manifest line of the recognition model the analyzer embeds with."""
    from pathlib import Path

    rec = getattr(analyzer, "rec_path", None) or getattr(getattr(analyzer, "rec", None), "model_file", None)
    if rec is None:
        return "unknown recognizer - check its licence yourself."
    rec = Path(rec)
    return manifest.license_text("insightface", f"{rec.parent.parent.name}/{rec.parent.name}/{rec.name}")


NODE_CLASS_MAPPINGS = {"I2PIdentityScore": I2PIdentityScore}
NODE_DISPLAY_NAME_MAPPINGS = {"I2PIdentityScore": "I2P Identity Score"}
