"""The graphs for one or two people with the InsightFace / FaceID / inswapper models: recommended,
fast swap, couple, auto prompt, pre-paste."""
from __future__ import annotations

from graph import Graph
from pieces import *  # noqa: F401,F403 - the vocabulary of every recipe


def recommended_portrait(schemas) -> Graph:
    name = "recommended_portrait"
    g = Graph(name, "IP-to-Portrait: recommended portrait", note(name, [
        "Recommended portrait: the face photo's identity in the reference photo; background, pose and "
        "light stay as they were.",
        "1. Detect the faces; BiSeNet mask of the reference face with hair and neck.",
        f"2. FaceID Plus v2 identity patch on the SDXL inpainting model, face strength (weight) {FACE_STRENGTH:g}, "
        f"on until {STOP_AT:.0%} of the steps (stop-at {STOP_AT:g}), acting only inside the face mask.",
        f"3. Face inpaint: {STEPS} steps, CFG {CFG:g}, denoise {DENOISE:g}; the face crop is sampled at 1024 px "
        "and pasted back (outside the blend band the photo is bit-identical).",
        f"4. inswapper_128 face swap, then GFPGAN v1.4 at strength {GFPGAN_STRENGTH:g}. Pre-paste and seam "
        "refinement: off.",
        "5. Identity score (ArcFace cosine to the face photo) and Save.",
        "Why these values: docs/workflows.md, 'Recommended settings'.",
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
        f"Fast swap: no diffusion. Detect the faces, inswapper_128 swap, GFPGAN v1.4 restore ({GFPGAN_STRENGTH:g}), "
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
        "acts only inside that person's mask), own 1024 px face inpaint with the same settings; then both "
        f"swaps, GFPGAN {GFPGAN_STRENGTH:g}, a score per person, save.",
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
    inp = simple_inpaint(g, ckpt, pos, neg, pasted["image"], m, a["targets"])
    finish(g, inp["image"], a["analyzer"], a["targets"], src, "pre_paste")
    return g
