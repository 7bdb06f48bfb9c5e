"""The manifest: every weight file the pack can use, where ComfyUI users keep it, and what it may be
used for.

Folders and file names are the ones users already have from IPAdapter_plus and ReActor, so an
existing install works without moving anything. ``license`` is the licence the publisher gives for the
weights and ``commercial`` follows it (False wherever it forbids commercial use); ``caveat`` says where
the training data carries other terms (CelebAMask-HQ, FFHQ, ...), which the weight licence cannot settle.
Nodes show all three next to the model so nobody has to guess.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Folders the pack registers with ComfyUI (core already has checkpoints, loras, clip_vision, ...).
MODEL_FOLDERS: dict[str, set[str]] = {
    "ipadapter": {".bin", ".safetensors"},
    "insightface": {".onnx", ".pth", ".pt", ".safetensors"},
    "facerestore_models": {".pth", ".pt", ".safetensors", ".onnx"},
    "facedetection": {".pth", ".pt", ".safetensors", ".onnx"},
    "ghost": {".pth", ".pt", ".safetensors", ".onnx"},
    "nsfw_detector": {".onnx", ".safetensors", ".json", ".pth"},
    "identities": {".safetensors"},  # I2P Save / Load Face Identity (written by the pack, not downloaded)
}

NON_COMMERCIAL_INSIGHTFACE = "InsightFace models: non-commercial research use only"
INSIGHTFACE_LICENSE_URL = "https://github.com/deepinsight/insightface#license"


@dataclass(frozen=True)
class ModelFile:
    """One downloadable file."""

    id: str
    folder: str  # ComfyUI models/ sub-folder
    filename: str  # path inside the folder, forward slashes
    size: int  # bytes
    sha256: str
    url: str
    license: str
    license_url: str
    commercial: bool
    used_by: str  # the stage / node that reads it
    description: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)  # other names the same file goes by
    group: str = ""  # files that only work together (e.g. the five buffalo_l graphs)
    caveat: str = ""  # training-data terms the weight licence does not cover


    @property
    def relpath(self) -> str:
        return f"{self.folder}/{self.filename}"

    @property
    def license_line(self) -> str:
        use = "commercial use allowed" if self.commercial else "NON-COMMERCIAL use only"
        caveat = f" Caveat: {self.caveat}" if self.caveat else ""
        return f"{self.filename}: {self.license} ({use}) - {self.license_url}{caveat}"


MODELS: tuple[ModelFile, ...] = ()  # filled in below, stage by stage


def _register(*files: ModelFile) -> None:
    global MODELS
    MODELS = MODELS + tuple(files)


def by_id(model_id: str) -> ModelFile:
    for m in MODELS:
        if m.id == model_id:
            return m
    known = ", ".join(m.id for m in MODELS)
    raise KeyError(f"unknown model id '{model_id}'. Known ids: {known}")


def by_filename(folder: str, filename: str) -> ModelFile | None:
    """The manifest entry for a file a user picked in a combo (by name or alias), if any.

    A file at the top of its folder is also recognised in a sub-folder (``loras/ipadapter/x``); a file
    that lives inside a pack folder only under its own path, because packs reuse names for different
    weights (AuraFace's ``glintr100.onnx`` is Apache-2.0, antelopev2's file of that name is not).
    """
    base = filename.replace("\\", "/")
    for m in MODELS:
        if m.folder != folder:
            continue
        if base == m.filename or base in m.aliases:
            return m
        if "/" not in m.filename and base.split("/")[-1] == m.filename:
            return m
    return None


def id_for(folder: str, filename: str) -> str | None:
    """The manifest id of a file (for "download it again" hints), or None for a file we do not list."""
    m = by_filename(folder, filename)
    return m.id if m else None


def in_group(group: str) -> list[ModelFile]:
    return [m for m in MODELS if m.group == group]


def license_text(folder: str, filename: str) -> str:
    """The licence line a node shows for the file it loaded ("unknown" for files not in the manifest)."""
    m = by_filename(folder, filename)
    if m is None:
        return f"{filename}: not in the IP-to-Portrait manifest - check its licence yourself."
    return m.license_line


# sha256 and size: filled from the publishers' own listings (see models/README or the closing notes of
# the foundation issue for where each came from). An empty sha256 means "not yet verified" and the
# download command refuses such an entry rather than trusting an unchecked file.
H94 = "https://huggingface.co/h94/IP-Adapter-FaceID/resolve/main"
_register(
    # ---- identity injection (IP-Adapter FaceID family, SDXL) ------------------------------------
    # sha256 (all four FaceID files): SwarmUI WorkflowGeneratorSteps.cs pins them for these URLs; sizes of the
    # plusv2 pair: two independent ComfyUI model inventories (1487555181 / 371842896 bytes). The plain
    # FaceID pair's exact sizes were not found (ComfyUI-Manager lists ~1.07 GB / 371.8 MB): size 0 = unknown.
    ModelFile("faceid-plusv2-sdxl", "ipadapter", "ip-adapter-faceid-plusv2_sdxl.bin", 1487555181,
              "c6945d82b543700cc3ccbb98d363b837e9c596281607857c74b713a876daf5fb",
              f"{H94}/ip-adapter-faceid-plusv2_sdxl.bin",
              "IP-Adapter-FaceID model card: non-commercial research use (InsightFace embeddings)",
              "https://huggingface.co/h94/IP-Adapter-FaceID", False, "I2P Identity Adapter Loader",
              "FaceID Plus v2 for SDXL (default identity mode)"),
    ModelFile("faceid-plusv2-sdxl-lora", "loras", "ip-adapter-faceid-plusv2_sdxl_lora.safetensors", 371842896,
              "f24b4bb2dad6638a09c00f151cde84991baf374409385bcbab53c1871a30cb7b",
              f"{H94}/ip-adapter-faceid-plusv2_sdxl_lora.safetensors",
              "IP-Adapter-FaceID model card: non-commercial research use (InsightFace embeddings)",
              "https://huggingface.co/h94/IP-Adapter-FaceID", False, "I2P Identity Adapter Loader",
              "LoRA trained together with FaceID Plus v2 SDXL",
              aliases=("ipadapter/ip-adapter-faceid-plusv2_sdxl_lora.safetensors",)),  # ComfyUI-Manager's place
    ModelFile("faceid-sdxl", "ipadapter", "ip-adapter-faceid_sdxl.bin", 0,
              "f455fed24e207c878ec1e0466b34a969d37bab857c5faa4e8d259a0b4ff63d7e",
              f"{H94}/ip-adapter-faceid_sdxl.bin",
              "IP-Adapter-FaceID model card: non-commercial research use (InsightFace embeddings)",
              "https://huggingface.co/h94/IP-Adapter-FaceID", False, "I2P Identity Adapter Loader",
              "FaceID (embedding only) for SDXL"),
    ModelFile("faceid-sdxl-lora", "loras", "ip-adapter-faceid_sdxl_lora.safetensors", 0,
              "4fcf93d6e8dc8dd18f5f9e51c8306f369486ed0aa0780ade9961308aff7f0d64",
              f"{H94}/ip-adapter-faceid_sdxl_lora.safetensors",
              "IP-Adapter-FaceID model card: non-commercial research use (InsightFace embeddings)",
              "https://huggingface.co/h94/IP-Adapter-FaceID", False, "I2P Identity Adapter Loader",
              "LoRA trained together with FaceID SDXL",
              aliases=("ipadapter/ip-adapter-faceid_sdxl_lora.safetensors",)),
    # sha256: SwarmUI (same URL); size: a ComfyUI model inventory listing the same sha256.
    ModelFile("ip-adapter-sdxl-vit-h", "ipadapter", "ip-adapter_sdxl_vit-h.safetensors", 698391064,
              "ebf05d918348aec7abb02a5e9ecef77e0aaea6914a5c4ea13f50d45eb1681831",
              "https://huggingface.co/h94/IP-Adapter/resolve/main/sdxl_models/ip-adapter_sdxl_vit-h.safetensors",
              "Apache-2.0", "https://huggingface.co/h94/IP-Adapter", True, "I2P Identity Adapter Loader",
              "plain SDXL image-prompt adapter (ViT-H): the 'standard' and 'CLIP blend' modes"),
    # sha256: SwarmUI pins it for this URL under this file name; size: two ComfyUI inventories (same hash).
    ModelFile("clip-vit-h-14", "clip_vision", "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", 2528373448,
              "6ca9667da1ca9e0b0f75e46bb030f7e011f44f86cbfb8d5a36590fcd7507b030",
              "https://huggingface.co/h94/IP-Adapter/resolve/main/models/image_encoder/model.safetensors",
              "MIT (OpenCLIP LAION-2B ViT-H/14)", "https://huggingface.co/laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
              True, "CLIPVisionLoader (core)", "image encoder for every CLIP-based identity mode",
              aliases=("model.safetensors",)),
    # ---- face analysis (InsightFace buffalo_l pack) --------------------------------------------
    # Download unit: the five files one by one (the URLs ComfyUI-Manager uses), each verified, resumable,
    # written straight to models/insightface/models/buffalo_l/ where IPAdapter_plus and ReActor (which
    # unzips buffalo_l.zip there) read them; no zip, so no extraction step and no unverified archive.
    # sha256: ReActor README ("safe to use models have the following hash"), also pinned by
    # SwarmUI-FaceTools; sizes: deep-live-cam's model manifest (same hashes).
    *[
        ModelFile(f"buffalo_l-{name.split('.')[0]}", "insightface", f"models/buffalo_l/{name}", size, sha,
                  f"https://huggingface.co/public-data/insightface/resolve/main/models/buffalo_l/{name}",
                  NON_COMMERCIAL_INSIGHTFACE, INSIGHTFACE_LICENSE_URL, False, "I2P Face Analyzer Loader",
                  role, group="buffalo_l")
        for name, role, size, sha in (
            ("det_10g.onnx", "SCRFD-10G face detector", 16923827,
             "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91"),
            ("w600k_r50.onnx", "ArcFace R50 identity embedding", 174383860,
             "4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43"),
            ("genderage.onnx", "gender and age", 1322532,
             "4fde69b1c810857b88c64a335084f1c3fe8f01246c9a191b48c7bb756d6652fb"),
            ("2d106det.onnx", "106-point 2D landmarks", 5030888,
             "f001b856447c413801ef5c42091ed0cd516fcd21f2d6b79635b1e733a7109dbf"),
            ("1k3d68.onnx", "68-point 3D landmarks", 143607619,
             "df5c06b8a0c12e422b2ed8947b8869faa4105387f199c477af038aa01f9a45cc"),
        )
    ],
    # ---- permissive face analysis (YuNet + AuraFace) ---------------------------------------------
    # YuNet 2023mar: OpenCV Zoo (MIT), run by OpenCV's own cv2.FaceDetectorYN. sha256 + size: the Hugging
    # Face LFS object of opencv/face_detection_yunet, pinned with these values by several projects.
    ModelFile("yunet-2023mar", "facedetection", "face_detection_yunet_2023mar.onnx", 232589,
              "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
              "https://huggingface.co/opencv/face_detection_yunet/resolve/main/face_detection_yunet_2023mar.onnx",
              "MIT (OpenCV Zoo, YuNet)", "https://github.com/opencv/opencv_zoo/tree/main/models/face_detection_yunet",
              True, "I2P Face Analyzer Loader (YuNet + AuraFace)", "YuNet face detector: boxes + 5 landmarks",
              group="yunet+auraface",
              caveat="trained on WIDER FACE (web images), whose own terms the MIT licence does not cover"),
    # AuraFace v1 (fal, Apache-2.0): ArcFace-style IResNet-100 on the 112 px ArcFace crop, 512-d. Stored
    # where fal's own instructions put it (models/auraface, an InsightFace-style pack folder). sha256 +
    # size: the Hugging Face LFS object of fal/AuraFace-v1 as pinned by two independent projects.
    # fal's repository also holds scrfd_10g_bnkps.onnx: InsightFace's SCRFD (the bytes of buffalo_l's
    # det_10g.onnx), non-commercial, and not used by this pack.
    ModelFile("auraface-v1", "insightface", "models/auraface/glintr100.onnx", 260694151,
              "a7933ea5330113b01c9b60351d8f4c33003f145d8470ac5f0e52ee2effe25c60",
              "https://huggingface.co/fal/AuraFace-v1/resolve/main/glintr100.onnx",
              "Apache-2.0 (fal AuraFace-v1)", "https://huggingface.co/fal/AuraFace-v1", True,
              "I2P Face Analyzer Loader (YuNet + AuraFace), I2P Identity Score",
              "AuraFace face recognition: 512-d identity embedding", group="yunet+auraface"),
    # ---- face parsing ----------------------------------------------------------------------------
    # size: SimpleSDXL's model list (facexlib's file); no published sha256 found -> download needs
    # --allow-unverified. ReActor/CodeFormer fetch the same name from sczhou/CodeFormer v0.1.0.
    ModelFile("bisenet-face-parsing", "facedetection", "parsing_bisenet.pth", 53289463, "",
              "https://github.com/xinntao/facexlib/releases/download/v0.2.0/parsing_bisenet.pth",
              "MIT (face-parsing.PyTorch / facexlib)", "https://github.com/zllrunning/face-parsing.PyTorch",
              True, "I2P Face Parsing Mask", "BiSeNet, 19 CelebAMask-HQ classes",
              aliases=("79999_iter.pth",),
              caveat="trained on CelebAMask-HQ, whose images are restricted to non-commercial research and "
                     "educational use by the dataset's publishers; the MIT licence of the weights does not "
                     "settle that (the commercial workflow uses I2P Face Box Mask instead)"),
    # ---- face swap -------------------------------------------------------------------------------
    # sha256 + size: ReActor README, deep-live-cam manifest and several projects pinning this URL.
    ModelFile("inswapper_128", "insightface", "inswapper_128.onnx", 554253681,
              "e4a3f08c753cb72d04e10aa0f7dbe3deebbf39567d4ead6dce08e98aa49e16af",
              "https://huggingface.co/ezioruan/inswapper_128.onnx/resolve/main/inswapper_128.onnx",
              NON_COMMERCIAL_INSIGHTFACE, INSIGHTFACE_LICENSE_URL, False, "I2P Face Swap",
              "InsightFace inswapper_128 (fp32)"),
    # sha256 + size: deep-live-cam's manifest for this URL; VisoMaster pins the same hash for its
    # inswapper_128.fp16.onnx (the file name used here).
    ModelFile("inswapper_128-fp16", "insightface", "inswapper_128.fp16.onnx", 277680638,
              "6d51a9278a1f650cffefc18ba53f38bf2769bf4bbff89267822cf72945f8a38b",
              "https://huggingface.co/hacksider/deep-live-cam/resolve/main/inswapper_128_fp16.onnx",
              NON_COMMERCIAL_INSIGHTFACE, INSIGHTFACE_LICENSE_URL, False, "I2P Face Swap",
              "InsightFace inswapper_128 (fp16)", aliases=("inswapper_128_fp16.onnx",)),
    # URLs: ghost's download_models.sh (release tags sber-swap-v2.0 and arcface of the renamed
    # sberbank-ai/sber-swap repo). No published sha256 or size found for either file.
    ModelFile("ghost-unet-2blocks", "ghost", "G_unet_2blocks.pth", 0, "",
              "https://github.com/ai-forever/ghost/releases/download/sber-swap-v2.0/G_unet_2blocks.pth",
              "Apache-2.0 (ai-forever/ghost)", "https://github.com/ai-forever/ghost", True, "I2P Face Swap",
              "Ghost AEI-Net generator, 256 px"),
    ModelFile("ghost-arcface", "ghost", "backbone.pth", 0, "",
              "https://github.com/ai-forever/ghost/releases/download/arcface/backbone.pth",
              "Published in ai-forever/ghost (Apache-2.0 repo), but an InsightFace arcface_torch iresnet100 "
              "trained on MS1M: treated as non-commercial like other InsightFace recognition weights",
              "https://github.com/deepinsight/insightface/tree/master/recognition/arcface_torch", False,
              "I2P Face Swap", "ArcFace (iresnet100) used by Ghost for its source identity"),
    # ---- face restore ----------------------------------------------------------------------------
    # sha256 + size: ReActor's download list (via SwarmUI-FaceTools) and several projects pinning it.
    ModelFile("gfpgan-v1.4", "facerestore_models", "GFPGANv1.4.pth", 348632874,
              "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad",
              "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",
              "Apache-2.0 (GFPGAN; includes NVIDIA StyleGAN2 ops licence terms)",
              "https://github.com/TencentARC/GFPGAN/blob/master/LICENSE", True, "I2P Face Restore",
              "GFPGAN v1.4 face restoration (loaded through spandrel)",
              caveat="trained on FFHQ, which NVIDIA publishes under CC BY-NC-SA 4.0; whether those terms "
                     "reach weights trained on it is a question for your legal review"),
    # ---- content safety --------------------------------------------------------------------------
    # ReActor's vit-base-nsfw-detector folder holds AdamCodd/vit-base-nsfw-detector (ViT-B/16, 384 px,
    # labels sfw/nsfw). sha256: SwarmUI-FaceTools; config.json: 715 bytes per the hub listing, no
    # published sha256.
    ModelFile("nsfw-vit", "nsfw_detector", "vit-base-nsfw-detector/model.safetensors", 0,
              "266efb8bf67c1e865a577222fbbd6ddb149b9e00ba0d2b50466a034837f026a4",
              "https://huggingface.co/AdamCodd/vit-base-nsfw-detector/resolve/main/model.safetensors",
              "Apache-2.0", "https://huggingface.co/AdamCodd/vit-base-nsfw-detector", True,
              "I2P Face Swap (content-safety gate)", "ViT image classifier: sfw / nsfw",
              group="nsfw-vit"),
    ModelFile("nsfw-vit-config", "nsfw_detector", "vit-base-nsfw-detector/config.json", 715, "",
              "https://huggingface.co/AdamCodd/vit-base-nsfw-detector/resolve/main/config.json",
              "Apache-2.0", "https://huggingface.co/AdamCodd/vit-base-nsfw-detector", True,
              "I2P Face Swap (content-safety gate)", "its configuration", group="nsfw-vit"),
    # ---- generation --------------------------------------------------------------------------------
    # No single-file RealVisXL V4.0 inpainting is published on Hugging Face (SG161222/RealVisXL_V4.0 has
    # only the base file; OzzyGT/RealVisXL_V4.0_inpainting is a diffusers folder). The single file is the
    # "V4.0 Inpainting" version on the Civitai model page: a manual download, no sha256 here.
    ModelFile("realvisxl-v4-inpainting", "checkpoints", "RealVisXL_V4.0_inpainting.safetensors", 0, "",
              "https://civitai.com/models/139562",
              "CreativeML Open RAIL++-M (the publisher's licence, openrail++ on the model card: commercial use "
              "allowed under the use-based restrictions of its Attachment A)",
              "https://huggingface.co/SG161222/RealVisXL_V4.0",
              True, "CheckpointLoaderSimple (core) -> I2P Face Inpaint",
              "SDXL 9-channel inpainting checkpoint (RealVisXL V4.0)",
              caveat="a fine-tune of SDXL 1.0, whose web-scale training data has no licence statement of its own"),
)

# ---- instruction-edit generator (FLUX.2 [klein] 4B), the edit_model_portrait workflow ------------------
# Licences as the publishers state them: Black Forest Labs' FLUX.2-klein-4B model card (Apache-2.0; the 9B
# klein models are NOT, they carry the FLUX Non-Commercial License), Qwen's Qwen3-4B card (Apache-2.0), and
# BFL's statement for the FLUX.2 VAE (Apache-2.0). File names are the ones ComfyUI's FLUX.2 klein template
# loads. Sizes and sha256 of the text encoder and the VAE are those of the Git LFS pointers in Comfy-Org's
# Flux-2-Klein-4B repackage (commits 8556e4d and a9e4ca8; the klein VAE differs from the flux2-dev upload, so
# the URL is the klein repo's). The DiT's pointer could not be read from this machine: size 0, sha256 ""
# (the download command refuses it; download it by hand from the URL).
_register(
    ModelFile("flux2-klein-4b", "diffusion_models", "flux-2-klein-4b.safetensors", 0, "",
              "https://huggingface.co/black-forest-labs/FLUX.2-klein-4B/resolve/main/flux-2-klein-4b.safetensors",
              "Apache-2.0", "https://huggingface.co/black-forest-labs/FLUX.2-klein-4B", True,
              "UNETLoader (core) -> I2P Face Inpaint", "FLUX.2 [klein] 4B instruction-edit DiT (128-channel latent)"),
    ModelFile("qwen3-4b-text-encoder", "text_encoders", "qwen_3_4b.safetensors", 8044982048,
              "6c671498573ac2f7a5501502ccce8d2b08ea6ca2f661c458e708f36b36edfc5a",
              "https://huggingface.co/Comfy-Org/Flux-2-Klein-4B/resolve/main/split_files/text_encoders/qwen_3_4b.safetensors",
              "Apache-2.0 (Qwen3-4B)", "https://huggingface.co/Qwen/Qwen3-4B", True,
              "CLIPLoader (core, type flux2)", "Qwen3-4B text encoder of FLUX.2 [klein] 4B"),
    ModelFile("flux2-vae", "vae", "flux2-vae.safetensors", 336211292,
              "868fe7b343cc8f3a19dbcfcafbc3d5f888802be3f89bd81b65b3621a066ce8f3",
              "https://huggingface.co/Comfy-Org/Flux-2-Klein-4B/resolve/main/split_files/vae/flux2-vae.safetensors",
              "Apache-2.0 (FLUX.2 VAE)", "https://huggingface.co/black-forest-labs/FLUX.2-dev", True,
              "VAELoader (core)", "FLUX.2 VAE (32 channels, 2x2 packed to 128 at /16)"),
)

# ---- instruction-edit generator (Qwen-Image-Edit-2511), the qwen_edit_portrait workflow ----------------------
# File names and URLs as Comfy-Org publishes them for ComfyUI (split_files; the ones ComfyUI's
# image_qwen_image_edit_2511 template loads). Licences as Qwen states them on the model cards: Qwen-Image-Edit-2511
# Apache-2.0, Qwen2.5-VL-7B-Instruct Apache-2.0 (unlike the 3B and 72B sizes), the Qwen-Image VAE ships in the
# Qwen-Image repository under Apache-2.0. sha256 of the text encoder and the VAE as Comfy-Org's Hugging Face file
# pages state them (Xet/LFS pointer details; the byte sizes are shown only rounded, 9.38 GB and 254 MB: size 0).
# The 2511 DiT's pointer could not be read from this machine: size 0, sha256 "" (the download command refuses
# it; download it by hand from the URL).
_register(
    ModelFile("qwen-image-edit-2511", "diffusion_models", "qwen_image_edit_2511_bf16.safetensors", 0, "",
              "https://huggingface.co/Comfy-Org/Qwen-Image-Edit_ComfyUI/resolve/main/split_files/diffusion_models/"
              "qwen_image_edit_2511_bf16.safetensors",
              "Apache-2.0", "https://huggingface.co/Qwen/Qwen-Image-Edit-2511", True,
              "UNETLoader (core) -> I2P Face Inpaint",
              "Qwen-Image-Edit-2511 instruction-edit DiT (20 B, bf16; 16-channel Wan 2.1 latent)"),
    ModelFile("qwen2.5-vl-7b-text-encoder", "text_encoders", "qwen_2.5_vl_7b_fp8_scaled.safetensors", 0,
              "cb5636d852a0ea6a9075ab1bef496c0db7aef13c02350571e388aea959c5c0b4",
              "https://huggingface.co/Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/text_encoders/"
              "qwen_2.5_vl_7b_fp8_scaled.safetensors",
              "Apache-2.0 (Qwen2.5-VL-7B-Instruct)", "https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct", True,
              "CLIPLoader (core, type qwen_image) -> TextEncodeQwenImageEditPlus",
              "Qwen2.5-VL 7B text and vision encoder of Qwen-Image(-Edit), fp8 scaled"),
    ModelFile("qwen-image-vae", "vae", "qwen_image_vae.safetensors", 0,
              "a70580f0213e67967ee9c95f05bb400e8fb08307e017a924bf3441223e023d1f",
              "https://huggingface.co/Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/vae/qwen_image_vae.safetensors",
              "Apache-2.0 (Qwen-Image)", "https://huggingface.co/Qwen/Qwen-Image", True,
              "VAELoader (core)", "Qwen-Image VAE (Wan 2.1 layout, 16 channels at /8)"),
)
