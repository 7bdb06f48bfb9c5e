"""The graphs with other model families: the commercially usable ones (YuNet + AuraFace, no
InsightFace) and the edit-model ones (FLUX.2 klein, Qwen-Image-Edit-2511)."""
from __future__ import annotations

from graph import Graph
from pieces import *  # noqa: F401,F403 - the vocabulary of every recipe


def box_mask(g: Graph, ref, faces, title: str):
    """The commercial graphs' mask: an ellipse from the detected face box. No parsing model: BiSeNet's
    weights are MIT but trained on CelebAMask-HQ, whose images are for non-commercial research only."""
    return g.add("I2PFaceBoxMask", "Face analysis", title, image=ref["IMAGE"], faces=faces["faces"],
                 shape="ellipse", expand=0.1, blur=12)


COMMERCIAL_STEPS = [
    "0. I2P License Check in 'require commercial' mode: the photos pass through it, so the run stops before any "
    "face is detected if a file without a commercial licence is loaded anywhere in the graph.",
    "1. Face analyzer 'YuNet + AuraFace (commercial)': YuNet detection (MIT) and AuraFace identity (Apache-2.0). "
    "It has no gender/age model, so select faces by order and indices, not by gender.",
    "2. Ellipse mask from the face box (I2P Face Box Mask). Not the BiSeNet parsing mask: its weights are MIT but "
    "trained on CelebAMask-HQ, whose images are for non-commercial research only.",
    "3. Pre-paste: the face photo's face is warped onto the reference face (5 landmarks), colour matched and "
    "blended inside the mask.",
    "4. Simple SDXL inpaint (no identity adapter) at denoise 0.65 repairs seams and light; GFPGAN v1.4 at 0.9.",
    "5. Identity score with AuraFace (not comparable with buffalo_l scores) and Save.",
]


def commercial_portrait(schemas) -> Graph:
    name = "commercial_portrait"
    g = Graph(name, "IP-to-Portrait: commercial portrait", note(name, [
        "Commercial portrait: the face photo's face in the reference photo, using only files whose publishers "
        "allow commercial use. No InsightFace, no FaceID, no inswapper.",
        *COMMERCIAL_STEPS,
        "For two people use commercial_couple (explicit mapping, one face photo per person).",
        "Models: facedetection/face_detection_yunet_2023mar.onnx, insightface/models/auraface/glintr100.onnx, "
        "checkpoints/RealVisXL_V4.0_inpainting.safetensors, facerestore_models/GFPGANv1.4.pth.",
    ], licences=COMMERCIAL), schemas, STAGES)
    i = inputs(g, licence_mode="require commercial")
    ckpt = checkpoint(g)
    a = analysis(g, i["ref"], pack=PERMISSIVE)
    src = detect_source(g, a["analyzer"], i["face"], "Detect face (face photo)")
    preview(g, a["targets"]["preview"], "Detected faces (numbered)")
    m = box_mask(g, i["ref"], a["targets"], "Face mask (ellipse)")
    pasted = g.add("I2PFacePrePaste", "Inpaint", "Face pre-paste", image=i["ref"]["IMAGE"], mask=m["mask"],
                   faces=a["targets"]["faces"], source_image=i["face"]["IMAGE"], source_faces=src["faces"])
    pos, neg = prompts(g, ckpt)
    inp = simple_inpaint(g, ckpt, pos, neg, pasted["image"], m, a["targets"])
    rest = restore(g, inp["image"], a["targets"], a["analyzer"])
    finish(g, rest["image"], a["analyzer"], a["targets"], src, "commercial")
    return g


def commercial_couple(schemas) -> Graph:
    name = "commercial_couple"
    g = Graph(name, "IP-to-Portrait: commercial couple photo", note(name, [
        "Commercial couple photo: two face photos into the two people of one reference photo, using only files "
        "whose publishers allow commercial use.",
        "Mapping (explicit): the reference's faces are numbered left to right. 'Face photo (person 1, left)' goes "
        "onto face 0, 'Face photo 2 (person 2, right)' onto face 1. To swap sides, set the indices of "
        "'Person 1 = reference face 0' to 1 and of 'Person 2 = reference face 1' to 0.",
        *COMMERCIAL_STEPS[:3],
        "3. Pre-paste person 1 into face 0, then person 2 into face 1, each inside its own mask.",
        *COMMERCIAL_STEPS[4:5],
        "5. One AuraFace identity score per person, then Save.",
        "Models: as commercial_portrait.",
    ], faces=2, licences=COMMERCIAL), schemas, STAGES)
    i = inputs(g, faces=2, licence_mode="require commercial")
    ckpt = checkpoint(g)
    a = analysis(g, i["ref"], order="left-right", pack=PERMISSIVE)
    person1 = g.add("I2PDetectFaces", "Face analysis", "Person 1 = reference face 0", analyzer=a["analyzer"]["analyzer"],
                    image=i["ref"]["IMAGE"], order="left-right", indices="0")
    person2 = g.add("I2PDetectFaces", "Face analysis", "Person 2 = reference face 1", analyzer=a["analyzer"]["analyzer"],
                    image=i["ref"]["IMAGE"], order="left-right", indices="1")
    preview(g, a["targets"]["preview"], "Reference faces, numbered left to right")
    src1 = detect_source(g, a["analyzer"], i["face"], "Detect face (face photo 1)")
    src2 = detect_source(g, a["analyzer"], i["face2"], "Detect face (face photo 2)")
    m1 = box_mask(g, i["ref"], person1, "Mask person 1 (ellipse)")
    m2 = box_mask(g, i["ref"], person2, "Mask person 2 (ellipse)")
    both = box_mask(g, i["ref"], a["targets"], "Mask both faces (ellipse)")
    paste1 = g.add("I2PFacePrePaste", "Inpaint", "Pre-paste person 1 -> face 0", image=i["ref"]["IMAGE"],
                   mask=m1["mask"], faces=person1["faces"], source_image=i["face"]["IMAGE"], source_faces=src1["faces"])
    paste2 = g.add("I2PFacePrePaste", "Inpaint", "Pre-paste person 2 -> face 1", image=paste1["image"],
                   mask=m2["mask"], faces=person2["faces"], source_image=i["face2"]["IMAGE"], source_faces=src2["faces"])
    pos, neg = prompts(g, ckpt)
    inp = simple_inpaint(g, ckpt, pos, neg, paste2["image"], both, a["targets"])
    rest = restore(g, inp["image"], a["targets"], a["analyzer"])
    g.add("I2PIdentityScore", "Output", "Identity score person 1", analyzer=a["analyzer"]["analyzer"],
          image=rest["image"], faces=a["targets"]["faces"], source_faces=src1["faces"], target_indices="0")
    g.add("I2PIdentityScore", "Output", "Identity score person 2", analyzer=a["analyzer"]["analyzer"],
          image=rest["image"], faces=a["targets"]["faces"], source_faces=src2["faces"], target_indices="1")
    g.add("SaveImage", "Output", "Save result", images=rest["image"], filename_prefix=SAVE_PREFIX + "commercial_couple")
    return g


EDIT_PROMPT = ("Put the face of the person in image 1 onto the person in image 2. Keep image 2's pose, "
               "expression, lighting, skin tone and hair; change nothing else.")
# Qwen-Image-Edit's text encoder sees only the images wired to TextEncodeQwenImageEditPlus ("Picture 1" = the
# face photo); the face crop reaches the DiT as the last reference latent, so the prompt names it "the photo".
QWEN_EDIT_PROMPT = ("Give the person in this photo the face of the person in Picture 1. Keep this photo's pose, "
                    "head angle, expression, lighting, skin tone and hair; change nothing else.")
EDIT_TAIL = ("inswapper_128 face swap as an identity lock (delete it and wire Face Inpaint into Face restore "
             "for a swap-free graph), GFPGAN v1.4 at 0.9, identity score, save.")
EDIT_FACE_MODELS = ("insightface/models/buffalo_l, insightface/inswapper_128.onnx, facerestore_models/GFPGANv1.4.pth, "
                    "facedetection/parsing_bisenet.pth")


def edit_front(g: Graph, unet: tuple[str, str], clip: tuple[str, str, str], vae: tuple[str, str]) -> dict:
    """The edit-model graphs' first half: photos, the three loaders (title, file[, CLIP type]), face
    detection on both photos and the parsing mask of the reference face."""
    i = inputs(g)
    n = {"i": i,
         "unet": g.add("UNETLoader", "Inputs", unet[0], unet_name=unet[1]),
         "clip": g.add("CLIPLoader", "Inputs", clip[0], clip_name=clip[1], type=clip[2]),
         "vae": g.add("VAELoader", "Inputs", vae[0], vae_name=vae[1])}
    n["a"] = analysis(g, i["ref"])
    n["src"] = detect_source(g, n["a"]["analyzer"], i["face"], "Detect face (face photo)")
    n["m"] = mask(g, i["ref"], n["a"]["targets"])
    preview(g, n["m"]["preview"], "Mask preview")
    return n


def edit_back(g: Graph, n: dict, model, pos, neg, title: str, prefix: str, **sampling) -> None:
    """The second half: Face Inpaint with the edit model (seed 42, denoise 1.0, crop 1024), the swap as
    identity lock, GFPGAN, the identity score and Save."""
    a, i = n["a"], n["i"]
    inp = g.add("I2PFaceInpaint", "Inpaint", title, model=model, positive=pos[0], negative=neg[0], vae=n["vae"][0],
                image=i["ref"]["IMAGE"], mask=n["m"]["mask"], faces=a["targets"]["faces"], seed=42,
                denoise=1.0, target_size=1024, **sampling)
    swap = swap_restore(g, inp["image"], a["targets"], i["face"], n["src"], analyzer=a["analyzer"])
    rest = restore(g, swap["image"], a["targets"], a["analyzer"])
    finish(g, rest["image"], a["analyzer"], a["targets"], n["src"], prefix)


def edit_model_portrait(schemas) -> Graph:
    """FLUX.2 [klein] 4B as the face generator inside crop -> stitch (issue 15; docs/face-inpaint.md)."""
    name = "edit_model_portrait"
    g = Graph(name, "IP-to-Portrait: edit-model portrait (FLUX.2 klein)", note(name, [
        "Edit-model portrait: FLUX.2 [klein] 4B places the face photo's face into the reference photo and "
        "matches its light; only the face crop is sampled, the rest of the photo stays bit-identical.",
        "1. Detect the faces; BiSeNet mask of the reference face with hair and neck.",
        "2. The face photo becomes reference image 1 (VAE Encode -> ReferenceLatent); Face Inpaint adds the "
        "face crop as the last reference (the edit target) and samples it with 4 steps, cfg 1 (klein is "
        "distilled) on Flux2Scheduler's sigmas for the crop's size (scheduler flux2). The SDXL identity patch and 9-channel conditioning do not apply here.",
        "3. " + EDIT_TAIL,
        "Qwen-Image-Edit instead: the qwen_edit_portrait workflow (same graph with Qwen-Image-Edit-2511).",
        "Models: diffusion_models/flux-2-klein-4b.safetensors, text_encoders/qwen_3_4b.safetensors, "
        "vae/flux2-vae.safetensors (all Apache-2.0), " + EDIT_FACE_MODELS + ".",
    ]), schemas, STAGES)
    n = edit_front(g, ("FLUX.2 klein 4B", "flux-2-klein-4b.safetensors"),
                   ("Qwen3-4B text encoder", "qwen_3_4b.safetensors", "flux2"), ("FLUX.2 VAE", "flux2-vae.safetensors"))
    text = g.add("CLIPTextEncode", "Prompt", "Edit instruction", text=EDIT_PROMPT, clip=n["clip"][0])
    face_latent = g.add("VAEEncode", "Prompt", "Encode face photo", pixels=n["i"]["face"]["IMAGE"], vae=n["vae"][0])
    pos = g.add("ReferenceLatent", "Prompt", "Face photo as reference 1", conditioning=text[0], latent=face_latent[0])
    neg = g.add("ConditioningZeroOut", "Prompt", "Empty negative (cfg 1)", conditioning=text[0])
    edit_back(g, n, n["unet"][0], pos, neg, "Face inpaint (FLUX.2 klein, crop 1024)", "edit_model",
              steps=4, cfg=1.0, sampler_name="euler", scheduler="flux2")
    return g


# ComfyUI's Qwen-Image-Edit-2511 template (Comfy-Org workflow_templates, image_qwen_image_edit_2511): shift 3.1,
# CFGNorm 1, cfg 4, euler / simple, 20 steps in its "Comfy" column (40 in Qwen's).
QWEN_SHIFT = 3.1
QWEN_STEPS = 20
QWEN_CFG = 4.0


def qwen_edit_portrait(schemas) -> Graph:
    """Qwen-Image-Edit-2511 as the face generator inside crop -> stitch (issue 15; docs/face-inpaint.md)."""
    name = "qwen_edit_portrait"
    g = Graph(name, "IP-to-Portrait: edit-model portrait (Qwen-Image-Edit-2511)", note(name, [
        "Edit-model portrait with Qwen-Image-Edit-2511: the face photo's face placed into the reference photo "
        "in the photo's own light; only the face crop is sampled, the rest of the photo stays bit-identical.",
        "1. Detect the faces; BiSeNet mask of the reference face with hair and neck.",
        "2. Text Encode Qwen Image Edit Plus reads the instruction with the face photo as Picture 1 (Qwen2.5-VL "
        "sees it) and VAE-encodes it as reference latent 1; the empty negative carries the same picture. Face "
        "Inpaint appends the face crop as the last reference latent (the edit target; the text encoder does not "
        "see it, so the instruction calls it 'this photo').",
        f"3. Sampling as ComfyUI's Qwen-Image-Edit-2511 template: ModelSamplingAuraFlow shift {QWEN_SHIFT:g}, "
        f"CFGNorm 1, {QWEN_STEPS} steps, cfg {QWEN_CFG:g}, euler, simple (Qwen's own setting: 40 steps). The SDXL "
        "identity patch and 9-channel conditioning do not apply here.",
        "4. " + EDIT_TAIL,
        "Needs far more memory than FLUX.2 klein (20 B DiT + 7 B text encoder): docs/face-inpaint.md.",
        "Models: diffusion_models/qwen_image_edit_2511_bf16.safetensors, "
        "text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors, vae/qwen_image_vae.safetensors (all Apache-2.0), "
        + EDIT_FACE_MODELS + ".",
    ]), schemas, STAGES)
    n = edit_front(g, ("Qwen-Image-Edit-2511", "qwen_image_edit_2511_bf16.safetensors"),
                   ("Qwen2.5-VL 7B text encoder", "qwen_2.5_vl_7b_fp8_scaled.safetensors", "qwen_image"),
                   ("Qwen-Image VAE", "qwen_image_vae.safetensors"))
    shifted = g.add("ModelSamplingAuraFlow", "Inpaint", f"Shift {QWEN_SHIFT:g}", model=n["unet"][0], shift=QWEN_SHIFT)
    normed = g.add("CFGNorm", "Inpaint", "CFG norm", model=shifted[0], strength=1.0)
    face = n["i"]["face"]["IMAGE"]
    pos = g.add("TextEncodeQwenImageEditPlus", "Prompt", "Edit instruction (face photo = Picture 1)", clip=n["clip"][0],
                prompt=QWEN_EDIT_PROMPT, vae=n["vae"][0], image1=face)
    neg = g.add("TextEncodeQwenImageEditPlus", "Prompt", "Empty negative (same picture)", clip=n["clip"][0], prompt="",
                vae=n["vae"][0], image1=face)
    edit_back(g, n, normed[0], pos, neg, "Face inpaint (Qwen-Image-Edit-2511, crop 1024)", "qwen_edit",
              steps=QWEN_STEPS, cfg=QWEN_CFG, sampler_name="euler", scheduler="simple")
    return g
