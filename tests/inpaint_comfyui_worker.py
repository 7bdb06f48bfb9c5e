"""Runs I2PFaceInpaint inside a real ComfyUI process (imported, not served) with small random SDXL-
architecture models built from ComfyUI's own classes: a 9-channel inpainting UNet and a plain
4-channel one, and the SD/SDXL VAE. Prints one JSON line with what it saw. Used by
tests/test_inpaint_comfyui.py in a subprocess, so ComfyUI's modules never leak into other tests.

usage: python tests/inpaint_comfyui_worker.py COMFYUI_PATH
exit 77: ComfyUI cannot be imported with this interpreter (the test skips).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def main(comfy_path: str) -> dict:
    sys.path.insert(0, comfy_path)
    sys.path.insert(0, str(TESTS))
    try:
        import torch
        from comfy.cli_args import LatentPreviewMethod, args

        args.cpu = True
        args.preview_method = LatentPreviewMethod.Latent2RGB
        import comfy.model_management as mm
        import comfy.model_patcher
        import comfy.sd
        import comfy.supported_models
        import comfy.utils
        from comfy.ldm.models.autoencoder import AutoencoderKL
    except ImportError as exc:
        print(f"cannot import ComfyUI here: {exc}", file=sys.stderr)
        raise SystemExit(77)
    import numpy as np
    from packload import pack_module

    torch.manual_seed(0)

    def fill(module):
        with torch.no_grad():
            for name, p in module.named_parameters():
                if name.endswith("bias"):
                    p.zero_()
                elif "norm" in name:
                    p.fill_(1.0)
                else:
                    p.normal_(0, 0.02)
        return module

    def unet(in_channels: int):
        config = {"use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
                  "num_classes": "sequential", "adm_in_channels": 2816, "dtype": torch.float32,
                  "in_channels": in_channels, "out_channels": 4, "model_channels": 32, "num_res_blocks": [1, 1],
                  "transformer_depth": [0, 1], "transformer_depth_output": [0, 0, 1, 1], "channel_mult": [1, 2],
                  "transformer_depth_middle": 1, "use_linear_in_transformer": True, "context_dim": 2048,
                  "num_head_channels": 16, "use_temporal_attention": False, "use_temporal_resblock": False}
        model_config = comfy.supported_models.SDXL(config)
        model_config.set_inference_dtype(torch.float32, None)
        model = model_config.get_model({}, device="cpu")
        fill(model.diffusion_model)
        return comfy.model_patcher.ModelPatcher(model, load_device=mm.get_torch_device(),
                                                offload_device=mm.unet_offload_device())

    ddconfig = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
    vae = comfy.sd.VAE(sd=fill(AutoencoderKL(ddconfig=ddconfig, embed_dim=4)).state_dict())
    positive = [[torch.randn(1, 77, 2048) * 0.1, {"pooled_output": torch.randn(1, 1280) * 0.1}]]
    negative = [[torch.zeros(1, 77, 2048), {"pooled_output": torch.zeros(1, 1280)}]]

    node = pack_module("nodes.face_inpaint").I2PFaceInpaint()
    ft = pack_module("core.faces.types")
    fi = pack_module("core.inpaint.flow")
    adapter = pack_module("core.comfy_adapter")

    rng = np.random.default_rng(0)
    h, w = 200, 320
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ys, xs = np.mgrid[0:h, 0:w]
    mask = np.zeros((h, w), np.float32)
    faces = []
    for cx, cy, r in ((290, 40, 25), (90, 120, 30)):  # one at the right border, one inside
        mask[(xs - cx) ** 2 + (ys - cy) ** 2 <= r * r] = 1
        faces.append(ft.Face(bbox=np.array([cx - r, cy - r, cx + r, cy + r], np.float32),
                             kps=np.zeros((5, 2), np.float32), det_score=0.9))
    face_value = ft.Faces([ft.FaceSet((h, w), faces)])
    image_t = torch.from_numpy(image[None].astype(np.float32) / 255.0)
    mask_t = torch.from_numpy(mask[None])
    widgets = dict(seed=5, steps=2, cfg=5.0, sampler_name="euler", scheduler="normal", denoise=0.8,
                   target_size=128, context=2.0, blend=8, batch_count=2)
    settings = fi.InpaintSettings(seed=5, steps=2, denoise=0.8, target_size=128, blend=8)
    jobs, _ = fi.plan_jobs([image], [mask], face_value, settings)
    zone = np.zeros((h, w), bool)
    for job in jobs[0]:
        zone |= job.alpha > 0

    events = []
    cancel_at = {"value": None}

    def hook(value, total, preview, node_id=None):  # what ComfyUI's server installs: report, then interrupt point
        events.append((value, total, preview is not None))
        if cancel_at["value"] is not None and len(events) >= cancel_at["value"]:
            mm.interrupt_current_processing(True)
        mm.throw_exception_if_processing_interrupted()

    comfy.utils.set_progress_bar_global_hook(hook)
    report = {"in_comfyui": adapter.in_comfyui()}
    for name, in_channels in (("inpaint", 9), ("plain", 4)):
        model = unet(in_channels)
        model.model_options.setdefault("transformer_options", {})["i2p_identity"] = {
            "mode": "faceid_plus_v2", "weight": 1.0, "start_at": 0.0, "stop_at": 0.5}
        events.clear()
        with torch.inference_mode():
            out = node.inpaint(model, positive, negative, vae, image_t, mask_t, face_value, **widgets)
        img, preview, text = out["result"]
        result = np.clip(np.rint(img.numpy() * 255), 0, 255).astype(np.uint8)
        report[name] = {
            "shape": list(img.shape), "preview_shape": list(preview.shape), "text": text,
            "background_exact": all(np.array_equal(r[~zone], image[~zone]) for r in result),
            "face_changed": float(np.mean([(r[zone] != image[zone]).mean() for r in result])),
            "variations_differ": bool((result[0] != result[1]).any()),
            "events": len(events), "previews": sum(1 for e in events if e[2]),
            "finite": bool(np.isfinite(img.numpy()).all()),
        }
    # cancel: the interrupt raised from the sampler's progress hook leaves the node untouched
    events.clear()
    cancel_at["value"] = 1
    try:
        with torch.inference_mode():
            node.inpaint(unet(9), positive, negative, vae, image_t, mask_t, face_value, **widgets)
        report["cancel"] = "not raised"
    except mm.InterruptProcessingException:
        report["cancel"] = "InterruptProcessingException"
    except BaseException as exc:  # noqa: BLE001 - reported to the test, which fails on it
        report["cancel"] = f"{type(exc).__name__}: {exc}"
    finally:
        mm.interrupt_current_processing(False)
    report["cancel_events"] = len(events)
    return report


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
