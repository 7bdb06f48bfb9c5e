"""BiSeNet face parsing (19 CelebAMask-HQ classes): facexlib's architecture, loaded from the file users
already have (``parsing_bisenet.pth`` from facexlib, or the original face-parsing.PyTorch
``79999_iter.pth``, which share one key layout).

Nothing downloads: facexlib's own init helper fetches from GitHub when the file is absent, so the pack
builds the network itself and loads the state dict from the path it found.
"""
from __future__ import annotations

from pathlib import Path

from ..core import comfy_adapter
from ..core.errors import I2PError
from ..core.model_errors import model_file_errors
from .manifest import id_for

NODE = "I2P Face Parsing Mask"
NUM_CLASSES = 19


def _unwrap(state: dict) -> dict:
    """Accept a plain state dict, one saved from DataParallel (``module.``), or one under a wrapper key."""
    for key in ("state_dict", "params", "params_ema", "model"):
        if key in state and isinstance(state[key], dict):
            state = state[key]
            break
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_bisenet(path: str | Path, device=None) -> comfy_adapter.ManagedModel:
    """A BiSeNet(19) with the weights at ``path``, wrapped so ComfyUI can move and evict it."""
    import torch
    from facexlib.parsing.bisenet import BiSeNet

    with model_file_errors(NODE, "parsing_model", path, "a BiSeNet face-parsing state dict",
                           id_for("facedetection", Path(path).name), "facedetection"):
        state = comfy_adapter.load_torch_file(path, safe_load=True)
    state = _unwrap(dict(state))
    net = BiSeNet(num_class=NUM_CLASSES)
    expected = net.state_dict()
    unexpected = [k for k in state if k not in expected]
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    wrong = [k for k in state if k in expected and tuple(state[k].shape) != tuple(expected[k].shape)]
    if unexpected or missing or wrong:
        sample = (missing or unexpected or wrong)[:3]
        raise I2PError(NODE, "parsing_model",
                       f"{Path(path).name} is not a 19-class BiSeNet face-parsing state dict "
                       f"(e.g. {', '.join(sample)}).",
                       "use parsing_bisenet.pth (facexlib) or 79999_iter.pth (face-parsing.PyTorch).")
    net.load_state_dict(state, strict=False)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    net = fuse_batchnorm(net).to(memory_format=torch.channels_last)
    dev = device if device is not None else comfy_adapter.torch_device()
    return comfy_adapter.ManagedModel(net, load_device=torch.device(dev))


_PAIRS = (("conv", "bn"), ("conv1", "bn1"), ("conv2", "bn2"), ("conv_atten", "bn_atten"), ("0", "1"))


def fuse_batchnorm(net):
    """Fold every BatchNorm that directly follows a convolution into it (inference only): the same
    output, about a fifth less work on a CPU. Pairs are the ones facexlib's BiSeNet applies in sequence."""
    import torch
    from torch import nn

    for parent in list(net.modules()):
        for conv_name, bn_name in _PAIRS:
            conv, bn = getattr(parent, conv_name, None), getattr(parent, bn_name, None)
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
                continue
            with torch.no_grad():
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                bias = bn.bias - bn.running_mean * scale
                if conv.bias is not None:
                    bias = bias + conv.bias * scale
                conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
                conv.bias = nn.Parameter(bias, requires_grad=False)
            setattr(parent, bn_name, nn.Identity())
    return net
