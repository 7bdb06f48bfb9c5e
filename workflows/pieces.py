"""The pieces every bundled workflow is assembled from: file names, the recommended settings (one
place: docs/workflows.md explains each value), the note text and the node groups shared by graphs."""
from __future__ import annotations

from graph import Graph

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
# The seed's recommended settings (docs/workflows.md, "Recommended settings", says why each holds in
# this crop-based graph). Every SDXL workflow shares them, so the graphs differ only where they mean to.
STEPS = 30
CFG = 5.5
DENOISE = 0.9  # with the identity patch: most of the face is sampled anew, from the source identity
FACE_STRENGTH = 0.8  # I2P Apply Identity weight
STOP_AT = 0.9
GFPGAN_STRENGTH = 0.9
NONCOMMERCIAL = ("Licences: inswapper_128, buffalo_l and IP-Adapter FaceID are for NON-COMMERCIAL use; "
                 "RealVisXL is CreativeML OpenRAIL++-M; GFPGAN is Apache-2.0. Node 'I2P Model Licenses' "
                 "lists every file.")
COMMERCIAL = ("Licences: every file this graph loads is marked for commercial use by its publisher: YuNet (MIT), "
              "AuraFace v1 (Apache-2.0), RealVisXL V4.0 inpainting (CreativeML Open RAIL++-M, use-based "
              "restrictions), GFPGAN v1.4 (Apache-2.0; trained on FFHQ, CC BY-NC-SA 4.0: see docs/models.md). "
              "The License Check in 'require commercial' mode stops the run if a non-commercial or unknown file "
              "is added.")
PERMISSIVE = "YuNet + AuraFace (commercial)"
RUN_HINT = ("From a script, in any folder: python <ComfyUI>/custom_nodes/ip_to_portrait/i2p.py run --workflow {name} "
            "--reference R.jpg --face F.jpg{more} --out results/")

STAGES = ["Inputs", "Face analysis", "Identity", "Prompt", "Inpaint", "Swap and restore", "Output"]


def note(name: str, lines: list[str], faces: int = 1, licences: str = NONCOMMERCIAL) -> str:
    more = " --face F2.jpg" if faces == 2 else ""
    return "\n".join(lines + ["", licences, "", RUN_HINT.format(name=name, more=more)])


# ------------------------------------------------------------------------------------ shared pieces
def inputs(g: Graph, faces: int = 1, licence_mode: str = "warn") -> dict:
    """The photo loaders, passed through I2P License Check: every stage takes its photos from the check,
    so in 'require commercial' mode nothing is detected or sampled before the graph has passed it."""
    ref = g.add("LoadImage", "Inputs", "Reference photo", image="reference.png")
    face = g.add("LoadImage", "Inputs", "Face photo" if faces == 1 else "Face photo (person 1, left)",
                 image="face.png")
    extra = {}
    if faces == 2:
        extra["images_3"] = g.add("LoadImage", "Inputs", "Face photo 2 (person 2, right)", image="face2.png")["IMAGE"]
    check = g.add("I2PLicenseCheck", "Inputs", f"License check ({licence_mode})", images=ref["IMAGE"],
                  mode=licence_mode, images_2=face["IMAGE"], **extra)
    n = {"ref": {"IMAGE": check["images"]}, "face": {"IMAGE": check["images_2"]}}
    if faces == 2:
        n["face2"] = {"IMAGE": check["images_3"]}
    return n


def analysis(g: Graph, ref, order: str = "largest", indices: str = "", pack: str = "buffalo_l") -> dict:
    analyzer = g.add("I2PFaceAnalyzerLoader", "Face analysis", pack=pack, provider="auto")
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
                    weight=FACE_STRENGTH, stop_at=STOP_AT, steps=STEPS, adapter=loader["adapter"], clip_vision=clip_vision[0],
                    image=face["IMAGE"], faces=source_faces["faces"], analyzer=analyzer["analyzer"], **extra)
    return applied, loader, clip_vision


def prompts(g: Graph, ckpt, positive=POSITIVE, negative=NEGATIVE):
    pos = g.add("CLIPTextEncode", "Prompt", "Positive prompt", text=positive, clip=ckpt["CLIP"])
    neg = g.add("CLIPTextEncode", "Prompt", "Negative prompt", text=negative, clip=ckpt["CLIP"])
    return pos, neg


def inpaint(g: Graph, model, pos, neg, ckpt, image, face_mask, faces, denoise: float = DENOISE,
            title: str = "Face inpaint (crop 1024)"):
    return g.add("I2PFaceInpaint", "Inpaint", title, model=model["model"], positive=pos[0], negative=neg[0],
                 vae=ckpt["VAE"], image=image, mask=face_mask["mask"], faces=faces["faces"], seed=42, steps=STEPS,
                 cfg=CFG, sampler_name="dpmpp_2m", scheduler="karras", denoise=denoise, target_size=1024)


def simple_inpaint(g: Graph, ckpt, pos, neg, image, face_mask, faces, title: str = "Simple inpaint (denoise 0.65)"):
    """The pre-paste graphs' inpaint: the plain checkpoint (no identity model) at denoise 0.65, which keeps
    the pasted identity and repairs seams and light."""
    return g.add("I2PFaceInpaint", "Inpaint", title, model=ckpt["MODEL"], positive=pos[0], negative=neg[0],
                 vae=ckpt["VAE"], image=image, mask=face_mask["mask"], faces=faces["faces"], seed=42, steps=STEPS,
                 cfg=CFG, sampler_name="dpmpp_2m", scheduler="karras", denoise=0.65, target_size=1024)


def swap_restore(g: Graph, image, targets, face, source_faces, target_indices: str = "", source_indices: str = "",
                 title: str = "Face swap (inswapper_128)", *, analyzer):
    # the analyzer lets the target faces follow an image an earlier node changed (an inpaint moves faces)
    swap = g.add("I2PFaceSwap", "Swap and restore", title, image=image, target_faces=targets["faces"],
                 source_image=face["IMAGE"], source_faces=source_faces["faces"], swap_model=SWAPPER,
                 source_indices=source_indices, target_indices=target_indices, analyzer=analyzer["analyzer"])
    return swap


def restore(g: Graph, image, faces, analyzer):
    return g.add("I2PFaceRestore", "Swap and restore", f"Face restore (GFPGAN {GFPGAN_STRENGTH:g})", image=image,
                 faces=faces["faces"], restore_model=GFPGAN, strength=GFPGAN_STRENGTH,
                 analyzer=analyzer["analyzer"])


def finish(g: Graph, image, analyzer, targets, source_faces, prefix: str, **mapping):
    g.add("I2PIdentityScore", "Output", "Identity score", analyzer=analyzer["analyzer"], image=image,
          faces=targets["faces"], source_faces=source_faces["faces"], **mapping)
    g.add("SaveImage", "Output", "Save result", images=image, filename_prefix=SAVE_PREFIX + prefix)
