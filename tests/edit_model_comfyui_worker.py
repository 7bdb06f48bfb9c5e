"""Runs I2P Face Inpaint inside a real ComfyUI process (imported, not served) with reduced random-weight
FLUX.2 [klein] and Qwen-Image-Edit models in their real key layouts (tests/model_factory/edit_models.py),
loaded through ComfyUI's own UNETLoader and VAELoader, conditioned through ComfyUI's ReferenceLatent,
sampled through comfy.sample. Prints one JSON line with what it saw; tests/test_inpaint_edit_comfyui.py
judges it. Runs in a subprocess so ComfyUI's modules never leak into other tests.

usage: python tests/edit_model_comfyui_worker.py COMFYUI_PATH MODELS_DIR
exit 77: ComfyUI cannot be imported with this interpreter (the test skips).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _file_shapes(path: Path) -> dict:
    """The file's tensors as meta tensors of the same shapes (what model detection reads)."""
    import torch
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {k: torch.empty(f.get_slice(k).get_shape(), device="meta") for k in f.keys()}


def main(comfy_path: str, models_dir: str) -> dict:
    sys.path.insert(0, comfy_path)
    sys.path.insert(0, str(TESTS))
    try:
        import torch
        from comfy.cli_args import LatentPreviewMethod, args

        args.cpu = True
        args.bf16_unet = True  # as the tier's servers run (--bf16-unet): the Qwen block stays ~0.8 GB
        args.preview_method = LatentPreviewMethod.Latent2RGB
        import comfy.model_detection
        import comfy.sample
        import comfy.utils
        import folder_paths
        import nodes as comfy_nodes
        from comfy_extras.nodes_edit_model import ReferenceLatent
    except ImportError as exc:
        print(f"cannot import ComfyUI here: {exc}", file=sys.stderr)
        raise SystemExit(77)
    import numpy as np
    from model_factory import edit_models
    from packload import pack_module

    contract = pack_module("core.identity.contract")
    identity_apply = pack_module("core.identity.apply")
    errors = pack_module("core.errors")

    torch.manual_seed(0)
    root = Path(models_dir)
    folder_paths.add_model_folder_path("diffusion_models", str(root / "diffusion_models"), is_default=True)
    folder_paths.add_model_folder_path("vae", str(root / "vae"), is_default=True)

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
    source_face = torch.from_numpy(rng.random((1, 96, 96, 3), dtype=np.float32))
    mask_t = torch.from_numpy(mask[None])
    widgets = dict(seed=5, steps=2, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0,
                   target_size=128, context=2.0, blend=8, batch_count=1)

    seen: list[dict] = []
    original_sample, original_custom = comfy.sample.sample, comfy.sample.sample_custom

    def record(model, positive, latent_image, sigmas=None):
        options = model.model_options.get("transformer_options", {})
        seen.append({
            "latent_shape": list(latent_image.shape),
            "refs": [list(r.shape) for r in positive[0][1].get("reference_latents", [])],
            "identity_on_model": contract.OPTIONS_KEY in options,
            "attn2_patches": len(options.get("patches_replace", {}).get("attn2", {})),
            "concat": "concat_latent_image" in positive[0][1],
            "sigmas": None if sigmas is None else [float(x) for x in sigmas],
        })

    def recording_sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, **kw):
        record(model, positive, latent_image)
        return original_sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, **kw)

    def recording_custom(model, noise, cfg, sampler, sigmas, positive, negative, latent_image, **kw):
        record(model, positive, latent_image, sigmas)
        return original_custom(model, noise, cfg, sampler, sigmas, positive, negative, latent_image, **kw)

    comfy.sample.sample, comfy.sample.sample_custom = recording_sample, recording_custom
    from comfy_extras.nodes_flux import Flux2Scheduler  # ComfyUI's own node: what the flux2 choice must equal
    report_sigmas = [float(x) for x in Flux2Scheduler.execute(2, 128, 128).result[0]]
    report: dict = {"in_comfyui": adapter.in_comfyui()}
    text_dims = {"flux2": edit_models.FLUX2_KLEIN_REDUCED["context_in_dim"], "qwen_image": edit_models.QWEN_TEXT_DIM}
    for kind in ("flux2", "qwen_image"):
        unet_path, vae_path = edit_models.build(kind, root)
        file_sd = _file_shapes(unet_path)  # keys and shapes only: meta tensors, no second copy in memory
        detected = comfy.model_detection.detect_unet_config(file_sd, "")
        model = comfy_nodes.UNETLoader().load_unet(unet_path.name, "default")[0]
        vae = comfy_nodes.VAELoader().load_vae(vae_path.name)[0]
        loaded_sd = model.model.diffusion_model.state_dict()
        try:  # I2P Apply Identity on this real MODEL: refused before anything else is looked at
            identity_apply.apply_identity(model, "faceid_plus_v2", 1.0, 0.0, 1.0)
            refusal = None
        except errors.I2PError as exc:
            refusal = {"node": exc.node, "input": exc.input_name, "text": str(exc)}
        identity = {"mode": "faceid_plus_v2", "weight": 1.0, "start_at": 0.0, "stop_at": 1.0, "masked": True}
        patched = model.clone()
        patched.model_options.setdefault("transformer_options", {})[contract.OPTIONS_KEY] = identity

        def marked(q, k, v, extra_options):  # stands in for the identity node's attn2 patch
            raise AssertionError("an SDXL attn2 patch ran on a DiT")

        setattr(marked, contract.PATCH_MARKER, True)  # how the pack marks its own attn2 patches
        marked.inner = None
        patched.set_model_attn2_replace(marked, "input", 4, 0)

        cross_attn = torch.randn(1, 8, text_dims[kind]) * 0.1
        positive = [[cross_attn, {}]]
        negative = [[torch.zeros_like(cross_attn), {}]]
        reference = {"samples": vae.encode(source_face)}
        positive = ReferenceLatent.execute(positive, reference).result[0]  # ComfyUI's own node

        settings = fi.InpaintSettings(seed=5, steps=2, denoise=1.0, target_size=128, blend=8, multiple=16)
        jobs, _ = fi.plan_jobs([image], [mask], face_value, settings)
        zone = np.zeros((h, w), bool)
        for job in jobs[0]:
            zone |= job.alpha > 0
        seen.clear()
        with torch.inference_mode():
            # FLUX.2 samples with its own resolution-aware schedule; Qwen-Image with a named one
            scheduler = "flux2" if kind == "flux2" else "simple"
            out = node.inpaint(patched, positive, negative, vae, image_t, mask_t, face_value,
                               **dict(widgets, scheduler=scheduler))
        img, preview, text = out["result"]
        result = np.clip(np.rint(img.numpy() * 255), 0, 255).astype(np.uint8)
        report[kind] = {
            "model_class": type(model.model).__name__,
            "latent_channels": model.model.latent_format.latent_channels,
            "unet_dtype": str(model.model.get_dtype()),
            "detected": {k: detected.get(k) for k in ("image_model", "depth", "depth_single_blocks", "hidden_size",
                                                      "num_heads", "in_channels", "num_layers", "guidance_embed",
                                                      "default_ref_method")},
            "same_keys": sorted(loaded_sd) == sorted(file_sd),
            "same_shapes": all(tuple(loaded_sd[k].shape) == tuple(file_sd[k].shape) for k in file_sd if k in loaded_sd),
            "vae_latent_channels": vae.latent_channels, "vae_downscale": vae.spacial_compression_encode(),
            "file_mb": round(unet_path.stat().st_size / 2**20, 1),
            "shape": list(img.shape), "preview_shape": list(preview.shape), "text": text,
            "background_exact": bool(np.array_equal(result[0][~zone], image[~zone])),
            "changed_outside": int((result[0][~zone] != image[~zone]).any(axis=-1).sum()),
            "face_changed": float((result[0][zone] != image[zone]).mean()),
            "finite": bool(np.isfinite(img.numpy()).all()),
            "samples": list(seen),
            "user_ref_shape": list(reference["samples"].shape),
            "graph_model_keeps_identity": contract.OPTIONS_KEY in patched.model_options["transformer_options"],
            "flux2_scheduler_node_sigmas": report_sigmas,
            "identity_refusal": refusal,
        }
        del model, patched, vae, file_sd, loaded_sd
    return report


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
