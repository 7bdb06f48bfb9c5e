"""BiSeNet face parsing in the real layout: facexlib's ``BiSeNet(num_class=19)`` state dict (identical
keys to face-parsing.PyTorch's ``79999_iter.pth``), saved with ``torch.save`` as a plain dict.

The network is small (13.3 M parameters, 53 MB), so both profiles are the real size. Weights are seeded
random: the parse it produces is arbitrary, which is why mask logic is tested on controlled parse maps.
"""
from __future__ import annotations

from pathlib import Path

from . import builder


def build_bisenet(dest: Path, profile: str = "tiny", seed: int = 0, prefix: str = "") -> None:
    import torch
    from facexlib.parsing.bisenet import BiSeNet

    gen = torch.Generator().manual_seed(seed)
    net = BiSeNet(num_class=19)
    state = {}
    for name, value in net.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue  # the original 79999_iter.pth predates this buffer
        if name.endswith("running_var"):
            v = torch.rand(value.shape, generator=gen) * 0.5 + 0.75
        elif name.endswith("running_mean"):
            v = torch.randn(value.shape, generator=gen) * 0.05
        elif value.ndim == 1:  # BatchNorm weight / bias
            v = (torch.ones(value.shape) if name.endswith("weight") else torch.zeros(value.shape))
        else:
            fan_in = max(1, value[0].numel())
            v = torch.randn(value.shape, generator=gen) * (2.0 / fan_in) ** 0.5
        state[prefix + name] = v.contiguous()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as f:
        torch.save(state, f)


@builder("bisenet-face-parsing")
def _bisenet(dest: Path, profile: str) -> None:
    build_bisenet(dest, profile)
