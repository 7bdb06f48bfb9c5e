"""Ghost (ai-forever/ghost, Apache-2.0): the AEI-Net face-swap generator and its ArcFace iresnet100.

Written from the published architecture so that the released weight files load by key:
``G_unet_2blocks.pth`` (AEI-Net, U-Net attribute encoder, two AAD blocks per residual block, identity
size 512, 256 px) and ``backbone.pth`` (ArcFace iresnet100, 112 px, 512-d).

Every width is a multiple of one ``base`` (32 in the published generator) and every ArcFace width of
``width`` (64 in iresnet100); the loaders read both from the tensors' shapes, so the same code runs the
real files and the tiny test files.
"""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn


# --------------------------------------------------------------------------------------- AEI-Net
class AADLayer(nn.Module):
    """Adaptive attentional denormalisation: a learned per-pixel mix of the target's attributes and
    the source identity, both applied to the instance-normalised activations."""

    def __init__(self, channels: int, attr_channels: int, id_dim: int):
        super().__init__()
        self.channels = channels
        self.conv1 = nn.Conv2d(attr_channels, channels, 1)  # attribute gamma
        self.conv2 = nn.Conv2d(attr_channels, channels, 1)  # attribute beta
        self.fc1 = nn.Linear(id_dim, channels)  # identity gamma
        self.fc2 = nn.Linear(id_dim, channels)  # identity beta
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.conv_h = nn.Conv2d(channels, 1, 1)  # attention mask

    def forward(self, h: torch.Tensor, z_attr: torch.Tensor, z_id: torch.Tensor) -> torch.Tensor:
        h = self.norm(h)
        attr = self.conv1(z_attr) * h + self.conv2(z_attr)
        n = h.shape[0]
        ident = self.fc1(z_id).reshape(n, self.channels, 1, 1) * h + self.fc2(z_id).reshape(n, self.channels, 1, 1)
        m = torch.sigmoid(self.conv_h(h))
        return (1 - m) * attr + m * ident


class AADChain(nn.Sequential):
    """``[AAD, ReLU, Conv] * n`` where every AAD also sees the attributes and the identity (the
    published files index these as ``add_blocks.0``, ``add_blocks.2``, ``add_blocks.3`` ...)."""

    def forward(self, h, z_attr, z_id):  # type: ignore[override]
        for module in self:
            h = module(h, z_attr, z_id) if isinstance(module, AADLayer) else module(h)
        return h


def _aad_chain(cin: int, cout: int, attr_c: int, id_dim: int, n: int) -> AADChain:
    layers: list[nn.Module] = []
    for i in range(n):
        out = cout if i == n - 1 else cin
        layers += [AADLayer(cin, attr_c, id_dim), nn.ReLU(), nn.Conv2d(cin, out, 3, 1, 1, bias=False)]
    return AADChain(*layers)


class AADResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, attr_c: int, id_dim: int, num_blocks: int):
        super().__init__()
        self.add_blocks = _aad_chain(cin, cout, attr_c, id_dim, num_blocks)
        self.last_add_block = _aad_chain(cin, cout, attr_c, id_dim, 1) if cin != cout else None

    def forward(self, h, z_attr, z_id):
        x = self.add_blocks(h, z_attr, z_id)
        skip = self.last_add_block(h, z_attr, z_id) if self.last_add_block is not None else h
        return x + skip


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1))


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x, skip):
        return torch.cat((F.leaky_relu(self.bn(self.deconv(x)), 0.1), skip), dim=1)


class AttributeEncoder(nn.Module):
    """The multi-level attribute encoder (U-Net): 8 attribute maps from 2x2 up to 256x256."""

    def __init__(self, base: int = 32):
        super().__init__()
        enc = [3] + [base * m for m in (1, 2, 4, 8, 16, 32, 32)]
        for i in range(7):
            setattr(self, f"conv{i + 1}", _down(enc[i], enc[i + 1]))
        # decoder in/out widths: (32b -> 32b), then (64b -> 16b), (32b -> 8b), ... (4b -> b)
        dec = [(32, 32), (64, 16), (32, 8), (16, 4), (8, 2), (4, 1)]
        for i, (cin, cout) in enumerate(dec):
            setattr(self, f"deconv{i + 1}", _Up(base * cin, base * cout))

    def forward(self, x):
        feats = []
        for i in range(1, 7):
            x = getattr(self, f"conv{i}")(x)
            feats.append(x)
        z = [self.conv7(x)]
        for i in range(6):
            z.append(getattr(self, f"deconv{i + 1}")(z[-1], feats[5 - i]))
        z.append(F.interpolate(z[-1], scale_factor=2, mode="bilinear", align_corners=True))
        return z


class AADGenerator(nn.Module):
    def __init__(self, base: int = 32, id_dim: int = 512, num_blocks: int = 2):
        super().__init__()
        self.up1 = nn.ConvTranspose2d(id_dim, base * 32, kernel_size=2, stride=1, padding=0)
        # (cin, cout, attribute channels) in units of base; the last block outputs RGB
        spec = [(32, 32, 32), (32, 32, 64), (32, 32, 32), (32, 16, 16), (16, 8, 8), (8, 4, 4), (4, 2, 2), (2, None, 2)]
        for i, (cin, cout, attr) in enumerate(spec):
            out = 3 if cout is None else base * cout
            setattr(self, f"AADBlk{i + 1}", AADResBlock(base * cin, out, base * attr, id_dim, num_blocks))

    def forward(self, z_attr, z_id):
        m = self.up1(z_id.reshape(z_id.shape[0], -1, 1, 1))
        for i in range(7):
            m = getattr(self, f"AADBlk{i + 1}")(m, z_attr[i], z_id)
            m = F.interpolate(m, scale_factor=2, mode="bilinear", align_corners=True)
        return torch.tanh(self.AADBlk8(m, z_attr[7], z_id))


class AEINet(nn.Module):
    """Target face (B,3,256,256) in [-1, 1] RGB + source identity (B,512) -> swapped face in [-1, 1]."""

    def __init__(self, base: int = 32, id_dim: int = 512, num_blocks: int = 2):
        super().__init__()
        self.encoder = AttributeEncoder(base)
        self.generator = AADGenerator(base, id_dim, num_blocks)

    def forward(self, target, z_id):
        return self.generator(self.encoder(target), z_id)


def aei_net_config(state_dict: dict) -> dict:
    """Architecture hyper-parameters read from a state dict's shapes and keys."""
    try:
        base = int(state_dict["encoder.conv1.0.weight"].shape[0])
        id_dim = int(state_dict["generator.up1.weight"].shape[0])
    except KeyError as exc:
        raise ValueError(f"not a Ghost AEI-Net (U-Net) state dict: missing {exc}") from None
    blocks = {int(m.group(1)) for k in state_dict
              if (m := re.match(r"generator\.AADBlk1\.add_blocks\.(\d+)\.", k))}
    num_blocks = (max(blocks) // 3 + 1) if blocks else 0
    if num_blocks < 1:
        raise ValueError("not a Ghost AEI-Net state dict: no generator.AADBlk1.add_blocks")
    return {"base": base, "id_dim": id_dim, "num_blocks": num_blocks}


# ------------------------------------------------------------------------------ ArcFace iresnet
class IBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, downsample: bool):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=1e-5))
            if downsample else None
        )

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (self.downsample(x) if self.downsample is not None else x)


class IResNet(nn.Module):
    """ArcFace iresnet (insightface arcface_torch layout): (B,3,112,112) in [-1, 1] RGB -> (B, dim)."""

    def __init__(self, layers=(3, 13, 30, 3), width: int = 64, embedding_dim: int = 512):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=1e-5)
        self.prelu = nn.PReLU(width)
        cin = width
        for i, n in enumerate(layers):
            cout = width * (2 ** i)
            blocks = [IBasicBlock(cin, cout, 2, True)] + [IBasicBlock(cout, cout, 1, False) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = cout
        self.bn2 = nn.BatchNorm2d(cin, eps=1e-5)
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(cin * 7 * 7, embedding_dim)
        self.features = nn.BatchNorm1d(embedding_dim, eps=1e-5)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def iresnet_config(state_dict: dict) -> dict:
    try:
        width = int(state_dict["conv1.weight"].shape[0])
        dim = int(state_dict["fc.weight"].shape[0])
    except KeyError as exc:
        raise ValueError(f"not an ArcFace iresnet state dict: missing {exc}") from None
    layers = []
    for i in range(1, 5):
        idx = {int(m.group(1)) for k in state_dict if (m := re.match(rf"layer{i}\.(\d+)\.", k))}
        if not idx:
            raise ValueError(f"not an ArcFace iresnet state dict: no layer{i}")
        layers.append(max(idx) + 1)
    return {"layers": tuple(layers), "width": width, "embedding_dim": dim}


def _unwrap(state_dict: dict) -> dict:
    """Accept checkpoints saved from DataParallel (``module.``) or wrapped in ``state_dict``."""
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], dict):
        state_dict = state_dict["state_dict"]
    if state_dict and all(k.startswith("module.") for k in state_dict):
        state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
    return state_dict


def build_aei_net(state_dict: dict) -> AEINet:
    state_dict = _unwrap(state_dict)
    net = AEINet(**aei_net_config(state_dict))
    net.load_state_dict(state_dict, strict=True)
    return net.eval().float()


def build_iresnet(state_dict: dict) -> IResNet:
    state_dict = _unwrap(state_dict)
    net = IResNet(**iresnet_config(state_dict))
    net.load_state_dict(state_dict, strict=True)
    return net.eval().float()
