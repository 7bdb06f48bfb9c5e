"""Test models of the post-processing stage, in the real formats and key layouts:

- ``inswapper_128`` / ``inswapper_128-fp16``: ONNX graphs with inswapper's I/O (``target`` 1x3x128x128 in
  [0, 1] RGB, ``source`` 1x512, one output 1x3x128x128 in [0, 1]) and a 512x512 ``emap`` as the last
  initializer, so insightface's ``model_zoo.get_model`` routes them to INSwapper. The graph has the
  inswapper shape (encoder to 1024 x 32 x 32, six AdaIN style blocks driven by the source vector,
  decoder); ``full`` has the real widths (~134 M parameters), ``tiny`` 1/64 of them. The fp16 file keeps
  fp16 weights behind Cast nodes (float32 I/O). :func:`build_inswapper` with ``identity=True`` returns its
  target input exactly: a swapper that changes nothing, to test the paste-back geometry.
- ``ghost-unet-2blocks`` / ``ghost-arcface``: state dicts of :mod:`models.ghost` (tiny widths, or the
  published sizes in ``full``), saved with ``torch.save`` as the released ``.pth`` files are.
- ``gfpgan-v1.4``: the full-size GFPGANv1Clean (spandrel's class, its config is fixed) in the
  ``params_ema`` layout, fp16 to save disk, in both profiles.
- ``nsfw-vit`` / ``nsfw-vit-config``: ``ViTForImageClassification`` (labels normal / nsfw) saved in the
  Hugging Face layout; tiny dims in ``tiny``, ViT-base in ``full``. The head's bias makes it call every
  picture normal, so graphs run with the content-safety gate on; refusal tests set their own head.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import builder


# ----------------------------------------------------------------------------------- inswapper
def build_inswapper(dest: Path, profile: str = "tiny", fp16: bool = False, identity: bool = False, seed: int = 0) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    div = 1 if profile == "full" else 64
    c1, c2, c3, c4 = (max(128 // div, 2), max(256 // div, 2), max(512 // div, 4), max(1024 // div, 8))
    nodes, inits = [], []
    wtype = np.float16 if fp16 else np.float32

    def weight(name, arr):
        arr = np.asarray(arr, np.float32)
        if fp16:
            inits.append(numpy_helper.from_array(arr.astype(np.float16), name + "_h"))
            nodes.append(helper.make_node("Cast", [name + "_h"], [name], to=TensorProto.FLOAT))
        else:
            inits.append(numpy_helper.from_array(arr.astype(wtype), name))
        return name

    counter = [0]

    def fresh(prefix):
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def conv(x, cin, cout, k, stride=1, reflect=True):
        pad = k // 2
        if reflect and pad:
            pname = fresh("padv")
            inits.append(numpy_helper.from_array(np.array([0, 0, pad, pad, 0, 0, pad, pad], np.int64), pname))
            y = fresh("padded")
            nodes.append(helper.make_node("Pad", [x, pname], [y], mode="reflect"))
            x, pad = y, 0
        w = weight(fresh("w"), rng.normal(0, np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k)))
        b = weight(fresh("b"), np.zeros(cout))
        y = fresh("conv")
        nodes.append(helper.make_node("Conv", [x, w, b], [y], kernel_shape=[k, k], strides=[stride, stride],
                                      pads=[pad] * 4))
        return y

    def act(x, kind="LeakyRelu"):
        y = fresh(kind.lower())
        nodes.append(helper.make_node(kind, [x], [y], **({"alpha": 0.2} if kind == "LeakyRelu" else {})))
        return y

    def adain(x, c):
        s = weight(fresh("in_s"), np.ones(c))
        b = weight(fresh("in_b"), np.zeros(c))
        n = fresh("inorm")
        nodes.append(helper.make_node("InstanceNormalization", [x, s, b], [n], epsilon=1e-8))
        outs = []
        for part, centre in (("gamma", 1.0), ("beta", 0.0)):
            w = weight(fresh(part + "_w"), rng.normal(0, 0.02, (512, c)))
            bb = weight(fresh(part + "_b"), np.full(c, centre))
            mm, ad, sh = fresh(part + "_mm"), fresh(part + "_add"), fresh(part + "_shape")
            inits.append(numpy_helper.from_array(np.array([1, c, 1, 1], np.int64), sh))
            r = fresh(part)
            nodes.extend([helper.make_node("MatMul", ["source", w], [mm]), helper.make_node("Add", [mm, bb], [ad]),
                      helper.make_node("Reshape", [ad, sh], [r])])
            outs.append(r)
        g, y = fresh("scaled"), fresh("adain")
        nodes.extend([helper.make_node("Mul", [n, outs[0]], [g]), helper.make_node("Add", [g, outs[1]], [y])])
        return y

    def upsample(x):
        sc = fresh("scales")
        inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), sc))
        y = fresh("up")
        nodes.append(helper.make_node("Resize", [x, "", sc], [y], mode="linear"))
        return y

    if identity:
        r, z, y = fresh("rsum"), fresh("zero"), fresh("zeroed")
        inits.append(numpy_helper.from_array(np.array(0.0, np.float32), z))
        nodes += [helper.make_node("ReduceSum", ["source"], [r], keepdims=0),
                  helper.make_node("Mul", [r, z], [y]), helper.make_node("Add", ["target", y], ["output"])]
    else:
        x = act(conv("target", 3, c1, 7))
        x = act(conv(x, c1, c2, 3))
        x = act(conv(x, c2, c3, 3, stride=2, reflect=False))
        x = act(conv(x, c3, c4, 3, stride=2, reflect=False))
        for _ in range(6):
            h = act(adain(conv(x, c4, c4, 3), c4), "Relu")
            h = adain(conv(h, c4, c4, 3), c4)
            y = fresh("res")
            nodes.append(helper.make_node("Add", [x, h], [y]))
            x = y
        x = act(conv(upsample(x), c4, c3, 3))
        x = act(conv(upsample(x), c3, c2, 3))
        x = act(conv(x, c2, c1, 3))
        t = act(conv(x, c1, 3, 7), "Tanh")
        one, half, s = fresh("one"), fresh("half"), fresh("shifted")
        inits += [numpy_helper.from_array(np.array(1.0, np.float32), one),
                  numpy_helper.from_array(np.array(0.5, np.float32), half)]
        nodes += [helper.make_node("Add", [t, one], [s]), helper.make_node("Mul", [s, half], ["output"])]
    # the emap insightface reads: the graph's LAST initializer, 512 x 512
    emap = rng.normal(0, 1.0 / np.sqrt(512), (512, 512)).astype(np.float16 if fp16 else np.float32)
    inits.append(numpy_helper.from_array(emap, "emap"))
    graph = helper.make_graph(
        nodes, "inswapper_128_test",
        [helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 128, 128]),
         helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 128, 128])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dest))
    return dest


@builder("inswapper_128")
def _inswapper(dest: Path, profile: str) -> None:
    build_inswapper(dest, profile)


@builder("inswapper_128-fp16")
def _inswapper_fp16(dest: Path, profile: str) -> None:
    build_inswapper(dest, profile, fp16=True)


# ------------------------------------------------------------------------------------------ ghost
def _ghost_module():
    from packload import pack_module

    return pack_module("models.ghost")


def _randomise(module, seed: int) -> dict:
    """Seeded, scale-aware random weights (keeps activations finite through 100 layers)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in module.state_dict().items():
        if not v.is_floating_point():
            sd[k] = v.clone()
        elif k.endswith("running_var"):
            sd[k] = torch.ones_like(v)
        elif k.endswith("running_mean") or k.endswith(".bias"):
            sd[k] = torch.zeros_like(v)
        elif v.ndim >= 2:
            fan_in = int(np.prod(v.shape[1:]))
            sd[k] = torch.randn(v.shape, generator=g) * (0.5 / np.sqrt(fan_in))
        else:
            sd[k] = torch.ones_like(v)
    return sd


@builder("ghost-unet-2blocks")
def _ghost_g(dest: Path, profile: str) -> None:
    import torch

    net = _ghost_module().AEINet(base=32 if profile == "full" else 2, id_dim=512, num_blocks=2)
    torch.save(_randomise(net, 1), str(dest))


@builder("ghost-arcface")
def _ghost_arcface(dest: Path, profile: str) -> None:
    import torch

    ghost = _ghost_module()
    net = ghost.IResNet() if profile == "full" else ghost.IResNet(layers=(1, 2, 2, 1), width=8)
    torch.save(_randomise(net, 2), str(dest))


# ------------------------------------------------------------------------------------------ gfpgan
@builder("gfpgan-v1.4")
def _gfpgan(dest: Path, profile: str) -> None:
    """Full size in every profile: spandrel hard-codes GFPGAN's config (86.4 M parameters)."""
    import torch
    from spandrel.architectures.GFPGAN import GFPGAN

    torch.manual_seed(3)
    net = GFPGAN(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None,
                 fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    torch.save({"params_ema": sd}, str(dest))


# --------------------------------------------------------------------------------------- nsfw vit
def _nsfw_folder(profile: str) -> Path:
    """Build (once per process and profile) a ViT classifier saved in the HF layout."""
    cache = _nsfw_folder.__dict__.setdefault("cache", {})
    if profile in cache and (cache[profile] / "model.safetensors").exists():
        return cache[profile]
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(4)
    dims = {} if profile == "full" else dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                            intermediate_size=32, image_size=32, patch_size=8)
    cfg = ViTConfig(id2label={0: "normal", 1: "nsfw"}, label2id={"normal": 0, "nsfw": 1}, **dims)
    model = ViTForImageClassification(cfg).eval()
    with torch.no_grad():  # random features, but a head that calls every picture "normal" (P(nsfw) ~ 1e-5):
        model.classifier.bias.copy_(torch.tensor([6.0, -6.0]))  # the gate stays on in graph tests
    folder = Path(tempfile.mkdtemp(prefix=f"i2p-nsfw-{profile}-"))
    model.save_pretrained(str(folder), safe_serialization=True)
    cache[profile] = folder
    return folder


@builder("nsfw-vit")
def _nsfw_weights(dest: Path, profile: str) -> None:
    shutil.copyfile(_nsfw_folder(profile) / "model.safetensors", dest)


@builder("nsfw-vit-config")
def _nsfw_config(dest: Path, profile: str) -> None:
    shutil.copyfile(_nsfw_folder(profile) / "config.json", dest)
