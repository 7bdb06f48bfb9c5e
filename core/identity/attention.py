"""The decoupled cross-attention term of IP-Adapter, as ComfyUI attn2 replace patches.

In every one of SDXL's 70 cross-attention layers:
``out = Attn(q, k_text, v_text) + w * mask * Attn(q, to_k_ip(tokens), to_v_ip(tokens))``,
where CFG's unconditional half of the batch uses the unconditional tokens
(``extra_options["cond_or_uncond"]``: 0 = cond chunk, 1 = uncond chunk). The term is on only in the
steps :mod:`core.stop_at` allows.

Plain torch: a replace function receives projected q/k/v of shape (B, N, heads*dim_head) and returns
the attention output before ``to_out``, so it is tested here with fake tensors. Registration on a
ComfyUI ModelPatcher is duck-typed (``clone`` / ``set_model_attn2_replace`` / ``model_options``).
"""
from __future__ import annotations

import logging
import math
from typing import Callable

import torch
import torch.nn.functional as F

from .contract import MASK_OPTION, OPTIONS_KEY, PATCH_MARKER, identity_info, set_identity_info
from .stop_at import SamplerStepWrapper, StepGate

log = logging.getLogger("IP-to-Portrait")

#: SDXL attn2 layers in the adapter's key order (diffusers processors: down, up, mid):
#: (block name, block number, transformer index) as ComfyUI's openaimodel reports them.
SDXL_ATTN2_LAYERS: tuple[tuple[str, int, int], ...] = tuple(
    [("input", b, t) for b in (4, 5) for t in range(2)]
    + [("input", b, t) for b in (7, 8) for t in range(10)]
    + [("output", b, t) for b in (0, 1, 2) for t in range(10)]
    + [("output", b, t) for b in (3, 4, 5) for t in range(2)]
    + [("middle", 0, t) for t in range(10)]
)
assert len(SDXL_ATTN2_LAYERS) == 70

SAMPLER_SAMPLE = "sampler_sample"  # comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, **_options) -> torch.Tensor:
    """Multi-head attention on (B, N, H*d) tensors → (B, N, H*d). Keyword options that ComfyUI's
    ``optimized_attention`` understands (``attn_precision``, ``transformer_options``) are accepted."""
    b, n, c = q.shape
    d = c // heads
    q_, k_, v_ = (t.reshape(t.shape[0], t.shape[1], heads, d).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q_, k_, v_)
    return out.transpose(1, 2).reshape(b, n, c)


def _grid(n_tokens: int, extra_options: dict) -> tuple[int, int]:
    """The (h, w) token grid of the layer: from ``activations_shape`` when it matches, else derived
    from the latent size (SDXL halves it with ceil at each downsample)."""
    shape = extra_options.get("activations_shape")
    if shape and len(shape) == 4 and shape[2] * shape[3] == n_tokens:
        return int(shape[2]), int(shape[3])
    orig = extra_options.get("original_shape")
    if orig and len(orig) >= 4:
        h, w = int(orig[-2]), int(orig[-1])
        for _ in range(6):
            if h * w == n_tokens:
                return h, w
            h, w = math.ceil(h / 2), math.ceil(w / 2)
    side = int(round(math.sqrt(n_tokens)))
    return side, max(n_tokens // max(side, 1), 1)


class IdentityPatch:
    """Everything the 70 layer patches share: tokens, weights, weight schedule and mask.

    ``cond``/``uncond``: (n, T, D) tokens. n == 1 is broadcast; n equal to the per-chunk batch gives
    each image its own identity; otherwise the n identities are concatenated along the token axis.
    """

    def __init__(self, cond: torch.Tensor, uncond: torch.Tensor, to_k_ip: list, to_v_ip: list,
                 weight: float, start_at: float = 0.0, stop_at: float = 1.0,
                 mask: torch.Tensor | None = None, attention: Callable = sdpa, info: dict | None = None):
        if len(to_k_ip) != len(to_v_ip):
            raise ValueError("to_k_ip and to_v_ip differ in length")
        self.cond = cond.detach()
        self.uncond = uncond.detach()
        self.to_k_ip = list(to_k_ip)
        self.to_v_ip = list(to_v_ip)
        self.weight = float(weight)
        self.gate = StepGate(start_at, stop_at)
        self.mask = None if mask is None else mask.detach().float()
        if self.mask is not None and self.mask.ndim == 2:
            self.mask = self.mask[None]
        self.attention = attention
        self.info = dict(info or {})
        self.trace: list | None = None  # tests: append (step, layer) for every applied term
        self._kv_cache: dict = {}
        self._mask_cache: dict = {}

    # ---------------------------------------------------------------------------------- pieces
    def _tokens(self, which: int, per_chunk: int) -> torch.Tensor:
        t = self.cond if which == 0 else self.uncond
        if t.shape[0] == 1 or t.shape[0] == per_chunk:
            return t
        return t.reshape(1, -1, t.shape[-1])

    def kv(self, layer: int, which: int, per_chunk: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """to_k_ip(tokens), to_v_ip(tokens): fixed for the whole sampling, so computed once per layer."""
        key = (layer, which, per_chunk, str(device), dtype)
        hit = self._kv_cache.get(key)
        if hit is None:
            tok = self._tokens(which, per_chunk).to(device=device, dtype=torch.float32)
            wk = self.to_k_ip[layer].to(device=device, dtype=torch.float32)
            wv = self.to_v_ip[layer].to(device=device, dtype=torch.float32)
            hit = ((tok @ wk.T).to(dtype), (tok @ wv.T).to(dtype))
            self._kv_cache[key] = hit
        return hit

    def layer_mask(self, n_tokens: int, extra_options: dict, device, dtype) -> torch.Tensor | None:
        """The mask resized to the layer's token grid: (m, N, 1), m = 1 or the mask's batch.

        A mask in ``transformer_options[MASK_OPTION]`` (set by a node that samples a crop, in
        that crop's frame) takes precedence over the one given to the node.
        """
        source = extra_options.get(MASK_OPTION)
        if source is None:
            source = self.mask
        if source is None:
            return None
        h, w = _grid(n_tokens, extra_options)
        key = (id(source), h, w, str(device), dtype)
        hit = self._mask_cache.get(key)
        if hit is None or hit[0] is not source:
            m = source.detach().float()
            m = m[None] if m.ndim == 2 else m
            m = F.interpolate(m[:, None].to(device), size=(h, w), mode="bilinear", align_corners=False)
            if len(self._mask_cache) > 64:
                self._mask_cache.clear()
            hit = (source, m.reshape(m.shape[0], h * w, 1).to(dtype=dtype))
            self._mask_cache[key] = hit
        return hit[1]

    def batch_kv(self, layer: int, cou: tuple, batch: int, device, dtype):
        """Keys and weight-scaled values for the whole CFG batch at once (cond/uncond rows in the
        order of ``cond_or_uncond``), so a layer costs one extra attention call, not one per chunk.
        None when cond and uncond differ in token count (several identities concatenated)."""
        key = (layer, cou, batch, str(device), dtype, self.weight)
        hit = self._kv_cache.get(key)
        if hit is None:
            per_chunk = batch // len(cou)
            ks, vs = [], []
            for which in cou:
                k, v = self.kv(layer, int(which), per_chunk, device, dtype)
                ks.append(k.expand(per_chunk, -1, -1))
                vs.append(v.expand(per_chunk, -1, -1))
            if len({k.shape[1] for k in ks}) != 1:
                hit = (None, None)
            else:
                hit = (torch.cat(ks).contiguous(), (torch.cat(vs).float() * self.weight).to(dtype).contiguous())
            self._kv_cache[key] = hit
        return hit

    def term(self, layer: int, q: torch.Tensor, extra_options: dict) -> torch.Tensor:
        """``w * mask * Attn(q, k_ip, v_ip)`` for the whole batch (rows by cond_or_uncond)."""
        heads = int(extra_options["n_heads"])
        precision = extra_options.get("attn_precision")
        cou = tuple(int(c) for c in (extra_options.get("cond_or_uncond") or [0]))
        k, v = self.batch_kv(layer, cou, q.shape[0], q.device, q.dtype) if q.shape[0] % len(cou) == 0 else (None, None)
        if k is not None:
            out = self.attention(q, k, v, heads, attn_precision=precision)
        else:  # per chunk (token counts differ between cond and uncond)
            chunks = q.chunk(len(cou)) if len(cou) > 1 else (q,)
            outs = []
            for which, qc in zip(cou, chunks):
                kc, vc = self.kv(layer, which, chunks[0].shape[0], qc.device, qc.dtype)
                outs.append(self.attention(qc, kc.expand(qc.shape[0], -1, -1), vc.expand(qc.shape[0], -1, -1),
                                           heads, attn_precision=precision) * self.weight)
            out = torch.cat(outs) if len(outs) > 1 else outs[0]
        mask = self.layer_mask(q.shape[1], extra_options, q.device, q.dtype)
        if mask is not None:
            if mask.shape[0] not in (1, out.shape[0]):
                reps = math.ceil(out.shape[0] / mask.shape[0])
                mask = mask.repeat(reps, 1, 1)[: out.shape[0]]
            out = out * mask
        return out

    def layer_fn(self, layer: int, inner: Callable | None = None) -> "LayerPatch":
        return LayerPatch(self, layer, inner)


class LayerPatch:
    """One attn2 replace function. ``inner`` is a replace patch another pack had registered on the same
    layer before us: it computes the text attention (plus its own terms) and we add ours."""

    i2p_identity_patch = True  # marks our own patch (replaced, never stacked)

    def __init__(self, patch: IdentityPatch, layer: int, inner: Callable | None = None):
        self.patch = patch
        self.layer = layer
        self.inner = inner

    def __call__(self, q, k, v, extra_options):
        p = self.patch
        if self.inner is not None:
            out = self.inner(q, k, v, extra_options)
        else:
            # the text attention this replace patch stands in for, as ComfyUI's own attn2 would run it
            out = p.attention(q, k, v, int(extra_options["n_heads"]),
                              attn_precision=extra_options.get("attn_precision"), transformer_options=extra_options)
        active, step, _n = p.gate.check(extra_options)
        if not active or p.weight == 0:
            return out
        if p.trace is not None:
            p.trace.append((step, self.layer))
        return out + p.term(self.layer, q, extra_options).to(out.dtype)


def patch_model(model, patch: IdentityPatch, layers=SDXL_ATTN2_LAYERS) -> tuple[object, str]:
    """A clone of ``model`` with ``patch`` in every attn2 layer. The input MODEL is untouched.

    Applying to a MODEL that already carries our patch replaces it (no silent stacking) and says so;
    a foreign attn2 replace patch (e.g. IPAdapter_plus) on the same layer is kept and chained.
    """
    if len(patch.to_k_ip) != len(layers):
        raise ValueError(f"adapter has {len(patch.to_k_ip)} layers, model patch needs {len(layers)}")
    m = model.clone()
    previous = identity_info(m)
    existing = m.model_options.get("transformer_options", {}).get("patches_replace", {}).get("attn2", {})
    message = ""
    chained = 0
    for i, (block, number, tindex) in enumerate(layers):
        old = existing.get((block, number, tindex))
        if old is not None and getattr(old, PATCH_MARKER, False):
            old = old.inner  # replace our own earlier patch, keep whatever it was chained to
        if old is not None:
            chained += 1
        m.set_model_attn2_replace(patch.layer_fn(i, old), block, number, tindex)
    if previous is not None:
        message = (f"this MODEL already had an IP-to-Portrait identity ({previous.get('mode')}, weight "
                   f"{previous.get('weight')}); it was replaced, not stacked.")
        log.info("I2P identity: %s", message)
    if chained:
        note = f"kept {chained} attention patches from another node (chained)."
        message = (message + " " + note).strip()
    if hasattr(m, "add_wrapper_with_key"):  # step callbacks for samplers a sigma cannot settle (heun)
        if hasattr(m, "remove_wrappers_with_key"):
            m.remove_wrappers_with_key(SAMPLER_SAMPLE, OPTIONS_KEY)
        m.add_wrapper_with_key(SAMPLER_SAMPLE, OPTIONS_KEY, SamplerStepWrapper(patch.gate))
    set_identity_info(m, patch.info)
    return m, message
