"""The manifest: every weight file the pack can use, where ComfyUI users keep it, and what it may be
used for.

Folders and file names are the ones users already have from IPAdapter_plus and ReActor, so an
existing install works without moving anything. ``commercial`` is False wherever the licence forbids
commercial use; nodes show ``license`` next to the model so nobody has to guess.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Folders the pack registers with ComfyUI (core already has checkpoints, loras, clip_vision, ...).
MODEL_FOLDERS: dict[str, set[str]] = {
    "ipadapter": {".bin", ".safetensors"},
    "insightface": {".onnx", ".pth", ".pt", ".safetensors"},
    "facerestore_models": {".pth", ".pt", ".safetensors", ".onnx"},
    "facedetection": {".pth", ".pt", ".safetensors"},
    "ghost": {".pth", ".pt", ".safetensors", ".onnx"},
    "nsfw_detector": {".onnx", ".safetensors", ".json", ".pth"},
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

    @property
    def relpath(self) -> str:
        return f"{self.folder}/{self.filename}"

    @property
    def license_line(self) -> str:
        use = "commercial use allowed" if self.commercial else "NON-COMMERCIAL use only"
        return f"{self.filename}: {self.license} ({use}) - {self.license_url}"


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
    """The manifest entry for a file a user picked in a combo (by name or alias), if any."""
    base = filename.replace("\\", "/")
    for m in MODELS:
        if m.folder == folder and (base == m.filename or base in m.aliases or base.split("/")[-1] == m.filename.split("/")[-1]):
            return m
    return None


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
    ModelFile("faceid-plusv2-sdxl", "ipadapter", "ip-adapter-faceid-plusv2_sdxl.bin", 0, "",
              f"{H94}/ip-adapter-faceid-plusv2_sdxl.bin",
              "IP-Adapter-FaceID model card: non-commercial research use (InsightFace embeddings)",
              "https://huggingface.co/h94/IP-Adapter-FaceID", False, "I2P Identity Adapter Loader",
              "FaceID Plus v2 for SDXL (default identity mode)"),
    ModelFile("faceid-plusv2-sdxl-lora", "loras", "ip-adapter-faceid-plusv2_sdxl_lora.safetensors", 0, "",
              f"{H94}/ip-adapter-faceid-plusv2_sdxl_lora.safetensors",
              "IP-Adapter-FaceID model card: non-commercial research use (InsightFace embeddings)",
              "https://huggingface.co/h94/IP-Adapter-FaceID", False, "I2P Identity Adapter Loader",
              "LoRA trained together with FaceID Plus v2 SDXL"),
    ModelFile("faceid-sdxl", "ipadapter", "ip-adapter-faceid_sdxl.bin", 0, "",
              f"{H94}/ip-adapter-faceid_sdxl.bin",
              "IP-Adapter-FaceID model card: non-commercial research use (InsightFace embeddings)",
              "https://huggingface.co/h94/IP-Adapter-FaceID", False, "I2P Identity Adapter Loader",
              "FaceID (embedding only) for SDXL"),
    ModelFile("faceid-sdxl-lora", "loras", "ip-adapter-faceid_sdxl_lora.safetensors", 0, "",
              f"{H94}/ip-adapter-faceid_sdxl_lora.safetensors",
              "IP-Adapter-FaceID model card: non-commercial research use (InsightFace embeddings)",
              "https://huggingface.co/h94/IP-Adapter-FaceID", False, "I2P Identity Adapter Loader",
              "LoRA trained together with FaceID SDXL"),
    ModelFile("ip-adapter-sdxl-vit-h", "ipadapter", "ip-adapter_sdxl_vit-h.safetensors", 0, "",
              "https://huggingface.co/h94/IP-Adapter/resolve/main/sdxl_models/ip-adapter_sdxl_vit-h.safetensors",
              "Apache-2.0", "https://huggingface.co/h94/IP-Adapter", True, "I2P Identity Adapter Loader",
              "plain SDXL image-prompt adapter (ViT-H): the 'standard' and 'CLIP blend' modes"),
    ModelFile("clip-vit-h-14", "clip_vision", "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", 0, "",
              "https://huggingface.co/h94/IP-Adapter/resolve/main/models/image_encoder/model.safetensors",
              "MIT (OpenCLIP LAION-2B ViT-H/14)", "https://huggingface.co/laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
              True, "CLIPVisionLoader (core)", "image encoder for every CLIP-based identity mode",
              aliases=("model.safetensors",)),
    # ---- face analysis (InsightFace buffalo_l pack) --------------------------------------------
    *[
        ModelFile(f"buffalo_l-{name.split('.')[0]}", "insightface", f"models/buffalo_l/{name}", 0, "",
                  f"https://huggingface.co/public-data/insightface/resolve/main/models/buffalo_l/{name}",
                  NON_COMMERCIAL_INSIGHTFACE, INSIGHTFACE_LICENSE_URL, False, "I2P Face Analyzer Loader",
                  role, group="buffalo_l")
        for name, role in (
            ("det_10g.onnx", "SCRFD-10G face detector"),
            ("w600k_r50.onnx", "ArcFace R50 identity embedding"),
            ("genderage.onnx", "gender and age"),
            ("2d106det.onnx", "106-point 2D landmarks"),
            ("1k3d68.onnx", "68-point 3D landmarks"),
        )
    ],
    # ---- face parsing ----------------------------------------------------------------------------
    ModelFile("bisenet-face-parsing", "facedetection", "parsing_bisenet.pth", 0, "",
              "https://github.com/xinntao/facexlib/releases/download/v0.2.0/parsing_bisenet.pth",
              "MIT (face-parsing.PyTorch / facexlib)", "https://github.com/zllrunning/face-parsing.PyTorch",
              True, "I2P Face Parsing Mask", "BiSeNet, 19 CelebAMask-HQ classes",
              aliases=("79999_iter.pth",)),
    # ---- face swap -------------------------------------------------------------------------------
    ModelFile("inswapper_128", "insightface", "inswapper_128.onnx", 0, "",
              "https://huggingface.co/ezioruan/inswapper_128.onnx/resolve/main/inswapper_128.onnx",
              NON_COMMERCIAL_INSIGHTFACE, INSIGHTFACE_LICENSE_URL, False, "I2P Face Swap",
              "InsightFace inswapper_128 (fp32)"),
    ModelFile("inswapper_128-fp16", "insightface", "inswapper_128.fp16.onnx", 0, "",
              "https://huggingface.co/facefusion/models/resolve/main/inswapper_128_fp16.onnx",
              NON_COMMERCIAL_INSIGHTFACE, INSIGHTFACE_LICENSE_URL, False, "I2P Face Swap",
              "InsightFace inswapper_128 (fp16)", aliases=("inswapper_128_fp16.onnx",)),
    ModelFile("ghost-unet-2blocks", "ghost", "G_unet_2blocks.pth", 0, "",
              "https://github.com/ai-forever/ghost/releases/download/v2/G_unet_2blocks.pth",
              "Apache-2.0 (ai-forever/ghost)", "https://github.com/ai-forever/ghost", True, "I2P Face Swap",
              "Ghost AEI-Net generator, 256 px"),
    ModelFile("ghost-arcface", "ghost", "backbone.pth", 0, "",
              "https://github.com/ai-forever/ghost/releases/download/arcface/backbone.pth",
              "Apache-2.0 (ai-forever/ghost)", "https://github.com/ai-forever/ghost", True, "I2P Face Swap",
              "ArcFace (iresnet100) used by Ghost for its source identity"),
    # ---- face restore ----------------------------------------------------------------------------
    ModelFile("gfpgan-v1.4", "facerestore_models", "GFPGANv1.4.pth", 0, "",
              "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",
              "Apache-2.0 (GFPGAN; includes NVIDIA StyleGAN2 ops licence terms)",
              "https://github.com/TencentARC/GFPGAN/blob/master/LICENSE", True, "I2P Face Restore",
              "GFPGAN v1.4 face restoration (loaded through spandrel)"),
    # ---- content safety --------------------------------------------------------------------------
    ModelFile("nsfw-vit", "nsfw_detector", "vit-base-nsfw-detector/model.safetensors", 0, "",
              "https://huggingface.co/Falconsai/nsfw_image_detection/resolve/main/model.safetensors",
              "Apache-2.0", "https://huggingface.co/Falconsai/nsfw_image_detection", True,
              "I2P Face Swap (content-safety gate)", "ViT image classifier: normal / nsfw",
              group="nsfw-vit"),
    ModelFile("nsfw-vit-config", "nsfw_detector", "vit-base-nsfw-detector/config.json", 0, "",
              "https://huggingface.co/Falconsai/nsfw_image_detection/resolve/main/config.json",
              "Apache-2.0", "https://huggingface.co/Falconsai/nsfw_image_detection", True,
              "I2P Face Swap (content-safety gate)", "its configuration", group="nsfw-vit"),
    # ---- generation --------------------------------------------------------------------------------
    ModelFile("realvisxl-v4-inpainting", "checkpoints", "RealVisXL_V4.0_inpainting.safetensors", 0, "",
              "https://huggingface.co/OzzyGT/RealVisXL_V4.0_inpainting/resolve/main/RealVisXL_V4.0_inpainting.safetensors",
              "CreativeML OpenRAIL++-M (use restrictions apply)", "https://huggingface.co/SG161222/RealVisXL_V4.0",
              True, "CheckpointLoaderSimple (core) -> I2P Face Inpaint",
              "SDXL 9-channel inpainting checkpoint (RealVisXL V4.0)"),
)
