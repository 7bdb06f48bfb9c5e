"""Builds the bundled workflows: ``python workflows/build.py`` (``--check`` only compares).

Each workflow is described once, below, as Python; ``graph.py`` writes it as the UI file the editor
opens (``workflows/<name>.json``, served by ComfyUI as a template, with ``<name>.jpg`` as its
thumbnail) and as the API file scripts and the CLI submit (``workflows/api/<name>.json``; ComfyUI only
serves ``*.json`` directly inside ``workflows/``, so the API copies in the sub-folder never show up as
broken templates). Run it again whenever a node's inputs change; tests/test_workflows.py fails until
the files match.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from graph import Graph, load_schemas  # noqa: E402
from thumbnail import render  # noqa: E402

CHECKPOINT = "RealVisXL_V4.0_inpainting.safetensors"
CLIP_VISION = "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
FACEID = "ip-adapter-faceid-plusv2_sdxl.bin"
SWAPPER = "inswapper_128.onnx"
GFPGAN = "GFPGANv1.4.pth"
POSITIVE = ("a natural photo of a person, detailed face, natural skin texture, sharp focus, "
            "same lighting as the scene")
NEGATIVE = ("blurry, deformed face, extra eyes, cartoon, painting, illustration, 3d render, "
            "plastic skin, overexposed, watermark, text")
SAVE_PREFIX = "IP-to-Portrait/"
NONCOMMERCIAL = ("Licences: inswapper_128, buffalo_l and IP-Adapter FaceID are for NON-COMMERCIAL use; "
                 "RealVisXL is CreativeML OpenRAIL++-M; GFPGAN is Apache-2.0. Node 'I2P Model Licenses' "
                 "lists every file.")
RUN_HINT = "From a script: python -m ip_to_portrait run --workflow {name} --reference R.jpg --face F.jpg{more} --out results/"

STAGES = ["Inputs", "Face analysis", "Identity", "Prompt", "Inpaint", "Swap and restore", "Output"]


def note(name: str, lines: list[str], faces: int = 1) -> str:
    more = " --face F2.jpg" if faces == 2 else ""
    return "\n".join(lines + ["", NONCOMMERCIAL, "", RUN_HINT.format(name=name, more=more)])


# ------------------------------------------------------------------------------------ shared pieces
def inputs(g: Graph, faces: int = 1) -> dict:
    n = {"ref": g.add("LoadImage", "Inputs", "Reference photo", image="reference.png"),
         "face": g.add("LoadImage", "Inputs", "Face photo" if faces == 1 else "Face photo (person 1, left)",
                       image="face.png")}
    if faces == 2:
        n["face2"] = g.add("LoadImage", "Inputs", "Face photo 2 (person 2, right)", image="face2.png")
    return n


def analysis(g: Graph, ref, order: str = "largest", indices: str = "") -> dict:
    analyzer = g.add("I2PFaceAnalyzerLoader", "Face analysis", pack="buffalo_l", provider="auto")
    targets = g.add("I2PDetectFaces", "Face analysis", "Detect faces (reference)", analyzer=analyzer["analyzer"],
                    image=ref["IMAGE"], order=order, indices=indices)
    return {"analyzer": analyzer, "targets": targets}


def detect_source(g: Graph, analyzer, image, title: str):
    return g.add("I2PDetectFaces", "Face analysis", title, analyzer=analyzer["analyzer"], image=image["IMAGE"],
                 order="largest", indices="0")


def mask(g: Graph, ref, faces, title: str = "Face mask (hair + neck)", hair: bool = True, neck: bool = True):
    return g.add("I2PFaceParsingMask", "Face analysis", title, image=ref["IMAGE"], faces=faces["faces"],
                 include_hair=hair, include_neck=neck)


def preview(g: Graph, image, title: str):
    return g.add("PreviewImage", "Face analysis", title, images=image)


def checkpoint(g: Graph):
    return g.add("CheckpointLoaderSimple", "Inputs", "SDXL inpainting checkpoint", ckpt_name=CHECKPOINT)


def identity(g: Graph, ckpt, face, source_faces, analyzer, attn_mask=None, title: str = "Apply identity",
             loader=None, clip_vision=None):
    loader = loader or g.add("I2PIdentityAdapterLoader", "Identity", "FaceID Plus v2 adapter (+ LoRA)",
                             model=ckpt["MODEL"], ipadapter_file=FACEID)
    clip_vision = clip_vision or g.add("CLIPVisionLoader", "Identity", "CLIP vision ViT-H", clip_name=CLIP_VISION)
    extra = {"attn_mask": attn_mask} if attn_mask is not None else {}
    applied = g.add("I2PApplyIdentity", "Identity", title, model=loader["model"], mode="FaceID Plus v2",
                    weight=1.0, stop_at=0.9, steps=30, adapter=loader["adapter"], clip_vision=clip_vision[0],
                    image=face["IMAGE"], faces=source_faces["faces"], analyzer=analyzer["analyzer"], **extra)
    return applied, loader, clip_vision


def prompts(g: Graph, ckpt, positive=POSITIVE, negative=NEGATIVE):
    pos = g.add("CLIPTextEncode", "Prompt", "Positive prompt", text=positive, clip=ckpt["CLIP"])
    neg = g.add("CLIPTextEncode", "Prompt", "Negative prompt", text=negative, clip=ckpt["CLIP"])
    return pos, neg


def inpaint(g: Graph, model, pos, neg, ckpt, image, face_mask, faces, denoise: float = 0.5,
            title: str = "Face inpaint (crop 1024)"):
    return g.add("I2PFaceInpaint", "Inpaint", title, model=model["model"], positive=pos[0], negative=neg[0],
                 vae=ckpt["VAE"], image=image, mask=face_mask["mask"], faces=faces["faces"], seed=42, steps=30,
                 cfg=5.0, sampler_name="dpmpp_2m", scheduler="karras", denoise=denoise, target_size=1024)


def swap_restore(g: Graph, image, targets, face, source_faces, target_indices: str = "", source_indices: str = "",
                 title: str = "Face swap (inswapper_128)", *, analyzer):
    # the analyzer lets the target faces follow an image an earlier node changed (an inpaint moves faces)
    swap = g.add("I2PFaceSwap", "Swap and restore", title, image=image, target_faces=targets["faces"],
                 source_image=face["IMAGE"], source_faces=source_faces["faces"], swap_model=SWAPPER,
                 source_indices=source_indices, target_indices=target_indices, analyzer=analyzer["analyzer"])
    return swap


def restore(g: Graph, image, faces, analyzer):
    return g.add("I2PFaceRestore", "Swap and restore", "Face restore (GFPGAN 0.9)", image=image,
                 faces=faces["faces"], restore_model=GFPGAN, strength=0.9, analyzer=analyzer["analyzer"])


def finish(g: Graph, image, analyzer, targets, source_faces, prefix: str, **mapping):
    g.add("I2PIdentityScore", "Output", "Identity score", analyzer=analyzer["analyzer"], image=image,
          faces=targets["faces"], source_faces=source_faces["faces"], **mapping)
    g.add("SaveImage", "Output", "Save result", images=image, filename_prefix=SAVE_PREFIX + prefix)


# --------------------------------------------------------------------------------------- workflows
def recommended_portrait(schemas) -> Graph:
    name = "recommended_portrait"
    g = Graph(name, "IP-to-Portrait: recommended portrait", note(name, [
        "Recommended portrait: the face photo's identity in the reference photo; background, pose and "
        "light stay as they were.",
        "1. Detect the faces; BiSeNet mask of the reference face with hair and neck.",
        "2. FaceID Plus v2 identity patch on the SDXL inpainting model, on until 90% of the steps (stop-at 0.9), "
        "acting only inside the face mask.",
        "3. Face inpaint: the face crop is sampled at 1024 px and pasted back (outside the blend band the "
        "photo is bit-identical).",
        "4. inswapper_128 face swap, then GFPGAN v1.4 at strength 0.9. Pre-paste and seam refinement: off.",
        "5. Identity score (ArcFace cosine to the face photo) and Save.",
        "Models: checkpoints/RealVisXL_V4.0_inpainting.safetensors, ipadapter/ip-adapter-faceid-plusv2_sdxl.bin, "
        "loras/ip-adapter-faceid-plusv2_sdxl_lora.safetensors, clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors, "
        "insightface/models/buffalo_l, insightface/inswapper_128.onnx, facerestore_models/GFPGANv1.4.pth, "
        "facedetection/parsing_bisenet.pth.",
    ]), schemas, STAGES)
    i = inputs(g)
    ckpt = checkpoint(g)
    a = analysis(g, i["ref"])
    src = detect_source(g, a["analyzer"], i["face"], "Detect face (face photo)")
    m = mask(g, i["ref"], a["targets"])
    preview(g, m["preview"], "Mask preview")
    model, _, _ = identity(g, ckpt, i["face"], src, a["analyzer"], m["mask"])
    pos, neg = prompts(g, ckpt)
    inp = inpaint(g, model, pos, neg, ckpt, i["ref"]["IMAGE"], m, a["targets"])
    swap = swap_restore(g, inp["image"], a["targets"], i["face"], src, analyzer=a["analyzer"])
    rest = restore(g, swap["image"], a["targets"], a["analyzer"])
    finish(g, rest["image"], a["analyzer"], a["targets"], src, "portrait")
    return g


def fast_swap(schemas) -> Graph:
    name = "fast_swap"
    g = Graph(name, "IP-to-Portrait: fast swap", note(name, [
        "Fast swap: no diffusion. Detect the faces, inswapper_128 swap, GFPGAN v1.4 restore (0.9), "
        "identity score, save. Seconds on a CPU.",
        "The largest face of the face photo goes onto the largest face of the reference photo; change "
        "'order' / 'indices' on the detect nodes or the swap's index lists to pick other faces.",
        "Models: insightface/models/buffalo_l, insightface/inswapper_128.onnx, facerestore_models/GFPGANv1.4.pth.",
    ]), schemas, STAGES)
    i = inputs(g)
    a = analysis(g, i["ref"])
    src = detect_source(g, a["analyzer"], i["face"], "Detect face (face photo)")
    preview(g, a["targets"]["preview"], "Detected faces (numbered)")
    swap = swap_restore(g, i["ref"]["IMAGE"], a["targets"], i["face"], src, analyzer=a["analyzer"])
    rest = restore(g, swap["image"], a["targets"], a["analyzer"])
    finish(g, rest["image"], a["analyzer"], a["targets"], src, "fast_swap")
    return g


def couple_photo(schemas) -> Graph:
    name = "couple_photo"
    g = Graph(name, "IP-to-Portrait: couple photo", note(name, [
        "Couple photo: two face photos into the two people of one reference photo.",
        "Mapping (explicit): the reference's faces are numbered left to right. 'Face photo (person 1, left)' "
        "goes onto face 0, 'Face photo 2 (person 2, right)' onto face 1. To swap sides, set the swap nodes' "
        "target_indices to 1 and 0 (and the per-person detect nodes' indices the same way).",
        "Each person gets the recommended treatment: own mask, own FaceID Plus v2 identity (the identity "
        "acts only inside that person's mask), own 1024 px face inpaint; then both swaps, GFPGAN 0.9, a "
        "score per person, save.",
        "Models: as the recommended portrait workflow.",
    ], faces=2), schemas, STAGES)
    i = inputs(g, faces=2)
    ckpt = checkpoint(g)
    a = analysis(g, i["ref"], order="left-right")
    person1 = g.add("I2PDetectFaces", "Face analysis", "Person 1 = reference face 0", analyzer=a["analyzer"]["analyzer"],
                    image=i["ref"]["IMAGE"], order="left-right", indices="0")
    person2 = g.add("I2PDetectFaces", "Face analysis", "Person 2 = reference face 1", analyzer=a["analyzer"]["analyzer"],
                    image=i["ref"]["IMAGE"], order="left-right", indices="1")
    preview(g, a["targets"]["preview"], "Reference faces, numbered left to right")
    src1 = detect_source(g, a["analyzer"], i["face"], "Detect face (face photo 1)")
    src2 = detect_source(g, a["analyzer"], i["face2"], "Detect face (face photo 2)")
    m1 = mask(g, i["ref"], person1, "Mask person 1")
    m2 = mask(g, i["ref"], person2, "Mask person 2")
    model1, loader, clip_vision = identity(g, ckpt, i["face"], src1, a["analyzer"], m1["mask"], "Identity person 1")
    model2, _, _ = identity(g, ckpt, i["face2"], src2, a["analyzer"], m2["mask"], "Identity person 2",
                            loader=loader, clip_vision=clip_vision)
    pos, neg = prompts(g, ckpt)
    inp1 = inpaint(g, model1, pos, neg, ckpt, i["ref"]["IMAGE"], m1, person1, title="Inpaint person 1")
    inp2 = inpaint(g, model2, pos, neg, ckpt, inp1["image"], m2, person2, title="Inpaint person 2")
    swap1 = swap_restore(g, inp2["image"], a["targets"], i["face"], src1, target_indices="0",
                         title="Swap person 1 -> face 0", analyzer=a["analyzer"])
    swap2 = swap_restore(g, swap1["image"], a["targets"], i["face2"], src2, target_indices="1",
                         title="Swap person 2 -> face 1", analyzer=a["analyzer"])
    rest = restore(g, swap2["image"], a["targets"], a["analyzer"])
    g.add("I2PIdentityScore", "Output", "Identity score person 1", analyzer=a["analyzer"]["analyzer"],
          image=rest["image"], faces=a["targets"]["faces"], source_faces=src1["faces"], target_indices="0")
    g.add("I2PIdentityScore", "Output", "Identity score person 2", analyzer=a["analyzer"]["analyzer"],
          image=rest["image"], faces=a["targets"]["faces"], source_faces=src2["faces"], target_indices="1")
    g.add("SaveImage", "Output", "Save result", images=rest["image"], filename_prefix=SAVE_PREFIX + "couple")
    return g


def auto_prompt(schemas) -> Graph:
    name = "auto_prompt"
    g = Graph(name, "IP-to-Portrait: auto prompt (Gemini)", note(name, [
        "Auto prompt: the recommended portrait, with the positive and negative prompts written by Gemini "
        "from the face photo (age, hair, skin tone, expression, glasses, light; no ethnicity labels).",
        "The API key comes from GEMINI_API_KEY / GOOGLE_API_KEY or <ComfyUI>/user/__ip_to_portrait/gemini.json, "
        "never from a widget. Without a key or network, the node's local template is used (status output says so).",
        "Models: as the recommended portrait workflow.",
    ]), schemas, STAGES)
    i = inputs(g)
    ckpt = checkpoint(g)
    a = analysis(g, i["ref"])
    src = detect_source(g, a["analyzer"], i["face"], "Detect face (face photo)")
    m = mask(g, i["ref"], a["targets"])
    preview(g, m["preview"], "Mask preview")
    src_hair = mask(g, i["face"], src, "Hair mask (face photo)")
    model, _, _ = identity(g, ckpt, i["face"], src, a["analyzer"], m["mask"])
    gemini = g.add("I2PAutoPromptGemini", "Prompt", "Auto prompt (Gemini)", face_image=i["face"]["IMAGE"],
                   reference_image=i["ref"]["IMAGE"], faces=src["faces"], hair_mask=src_hair["hair_mask"])
    pos, neg = prompts(g, ckpt, positive=gemini["positive"], negative=gemini["negative"])
    inp = inpaint(g, model, pos, neg, ckpt, i["ref"]["IMAGE"], m, a["targets"])
    swap = swap_restore(g, inp["image"], a["targets"], i["face"], src, analyzer=a["analyzer"])
    rest = restore(g, swap["image"], a["targets"], a["analyzer"])
    finish(g, rest["image"], a["analyzer"], a["targets"], src, "auto_prompt")
    return g


def pre_paste(schemas) -> Graph:
    name = "pre_paste"
    g = Graph(name, "IP-to-Portrait: pre-paste + simple inpaint", note(name, [
        "Pre-paste: the face photo's face is warped onto the reference face (5-landmark similarity fit), "
        "colour matched and blended inside the mask; then a plain SDXL inpaint (no identity adapter) at "
        "denoise 0.65 repairs the seams and the light. No IP-Adapter files needed.",
        "Models: checkpoints/RealVisXL_V4.0_inpainting.safetensors, insightface/models/buffalo_l, "
        "facedetection/parsing_bisenet.pth.",
    ]), schemas, STAGES)
    i = inputs(g)
    ckpt = checkpoint(g)
    a = analysis(g, i["ref"])
    src = detect_source(g, a["analyzer"], i["face"], "Detect face (face photo)")
    m = mask(g, i["ref"], a["targets"])
    preview(g, m["preview"], "Mask preview")
    pasted = g.add("I2PFacePrePaste", "Inpaint", "Face pre-paste", image=i["ref"]["IMAGE"], mask=m["mask"],
                   faces=a["targets"]["faces"], source_image=i["face"]["IMAGE"], source_faces=src["faces"])
    pos, neg = prompts(g, ckpt)
    inp = g.add("I2PFaceInpaint", "Inpaint", "Simple inpaint (denoise 0.65)", model=ckpt["MODEL"], positive=pos[0],
                negative=neg[0], vae=ckpt["VAE"], image=pasted["image"], mask=m["mask"], faces=a["targets"]["faces"],
                seed=42, steps=30, cfg=5.0, sampler_name="dpmpp_2m", scheduler="karras", denoise=0.65,
                target_size=1024)
    finish(g, inp["image"], a["analyzer"], a["targets"], src, "pre_paste")
    return g


WORKFLOWS = {f.__name__: f for f in (recommended_portrait, fast_swap, couple_photo, auto_prompt, pre_paste)}


def build_all(schemas=None) -> dict[str, tuple[dict, dict]]:
    """{name: (ui, api)} for every workflow."""
    schemas = schemas or load_schemas()
    out = {}
    for name, make in WORKFLOWS.items():
        g = make(schemas)
        out[name] = (g.to_ui(), g.to_api())
    return out


def dump(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the files on disk, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for name, (ui, api) in build_all().items():
        for path, data in ((HERE / f"{name}.json", ui), (HERE / "api" / f"{name}.json", api)):
            text = dump(data)
            if args.check:
                if not path.is_file() or path.read_text(encoding="utf-8") != text:
                    stale.append(str(path))
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if not args.check:
            render(ui, HERE / f"{name}.jpg")
    if stale:
        print("out of date (run python workflows/build.py):\n  " + "\n  ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
