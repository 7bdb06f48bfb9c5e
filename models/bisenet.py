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

    try:
        state = comfy_adapter.load_torch_file(path, safe_load=True)
    except comfy_adapter.interrupt_exception_types():
        raise
    except Exception as exc:
        raise I2PError(NODE, "parsing_model", f"could not read {Path(path).name}: {exc}",
                       "re-download it: python -m ip_to_portrait models download bisenet-face-parsing.") from None
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
    dev = device if device is not None else comfy_adapter.torch_device()
    return comfy_adapter.ManagedModel(net, load_device=torch.device(dev))
