"""Identity: adapter loading and variant detection, projection numerics against a direct computation,
the decoupled attention term, and the MODEL patch on a ModelPatcher-like object."""
from __future__ import annotations

import math
import shutil

import pytest
import torch
import torch.nn.functional as F

from packload import pack_module

ipa = pack_module("models.ipadapter")
attn = pack_module("core.identity.attention")
proj_mod = pack_module("models.ipadapter")  # the adapter owns its projection
enc = pack_module("core.identity.encoding")
errors = pack_module("core.errors")


# --------------------------------------------------------------------------------- fake patcher
class FakePatcher:
    """The slice of ComfyUI's ModelPatcher the identity patch uses (same copy semantics)."""

    def __init__(self):
        self.model_options = {"transformer_options": {}}
        self.wrappers = {}
        self.calls = []

    def clone(self):

        n = FakePatcher()
        n.model_options = _deepcopy_dicts(self.model_options)
        n.wrappers = {k: {k1: list(v1) for k1, v1 in v.items()} for k, v in self.wrappers.items()}
        return n

    def set_model_attn2_replace(self, patch, block_name, number, transformer_index=None):
        self.calls.append((block_name, number, transformer_index))
        to = self.model_options["transformer_options"].copy()
        pr = dict(to.get("patches_replace", {}))
        pr["attn2"] = dict(pr.get("attn2", {}))
        pr["attn2"][(block_name, number, transformer_index)] = patch
        to["patches_replace"] = pr
        self.model_options["transformer_options"] = to

    def add_wrapper_with_key(self, wrapper_type, key, wrapper):
        self.wrappers.setdefault(wrapper_type, {}).setdefault(key, []).append(wrapper)

    def remove_wrappers_with_key(self, wrapper_type, key):
        self.wrappers.get(wrapper_type, {}).pop(key, None)


def _deepcopy_dicts(obj):
    if isinstance(obj, dict):
        return {k: _deepcopy_dicts(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deepcopy_dicts(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def files(test_models):
    return {mid: test_models.get(mid) for mid in ("faceid-plusv2-sdxl", "faceid-sdxl", "ip-adapter-sdxl-vit-h",
                                                   "clip-vit-h-14")}


# ------------------------------------------------------------------------------------- loading
def test_variants_detected_from_state_dict(files, tmp_path):
    plus = ipa.load_ipadapter(files["faceid-plusv2-sdxl"])
    assert (plus.family, plus.is_v2, plus.base, len(plus.to_k_ip)) == (ipa.FACEID_PLUS, True, "SDXL", 70)
    assert [w.shape[0] for w in plus.to_k_ip] == ipa.SDXL_WIDTHS
    faceid = ipa.load_ipadapter(files["faceid-sdxl"])
    assert (faceid.family, faceid.base) == (ipa.FACEID, "SDXL")
    plain = ipa.load_ipadapter(files["ip-adapter-sdxl-vit-h"])  # flat safetensors keys
    assert (plain.family, plain.base) == (ipa.PLAIN, "SDXL")
    # a name that says nothing: the family still comes from the weights
    renamed = tmp_path / "my_adapter.bin"
    shutil.copy(files["faceid-sdxl"], renamed)
    assert ipa.load_ipadapter(renamed).family == ipa.FACEID
    mystery = tmp_path / "whatever.bin"
    shutil.copy(files["faceid-plusv2-sdxl"], mystery)
    m = ipa.load_ipadapter(mystery)
    assert m.family == ipa.FACEID_PLUS and m.is_v2 and "assumed" in m.describe()
    v1 = tmp_path / "ip-adapter-faceid-plus_sdxl.bin"
    shutil.copy(files["faceid-plusv2-sdxl"], v1)
    assert ipa.load_ipadapter(v1).is_v2 is False
    assert ipa.load_ipadapter(v1, "v2").is_v2 is True
    assert type(plus.projection()).__name__ == "IPAdapterFaceIDPlusImageProjection"
    assert type(faceid.projection()).__name__ == "IPAdapterFaceIDImageProjection"
    assert type(plain.projection()).__name__ == "ImageProjection"


def test_not_an_adapter_is_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    bad = tmp_path / "model.safetensors"
    save_file({"foo.weight": torch.zeros(2)}, str(bad))
    with pytest.raises(errors.I2PError, match="not an IP-Adapter file"):
        ipa.load_ipadapter(bad)
    trunc = tmp_path / "cut.bin"
    trunc.write_bytes(b"PK\x03\x04broken")
    with pytest.raises(errors.I2PError, match="could not be read"):
        ipa.load_ipadapter(trunc)


def _sd15_adapter(tmp_path):
    from model_factory.ipadapter_models import faceid_image_proj, ip_layers

    gen = torch.Generator().manual_seed(0)
    widths = ipa.SD15_WIDTHS
    sd = {"image_proj": faceid_image_proj(gen, 768), "ip_adapter": ip_layers(gen, 768, widths)}
    path = tmp_path / "ip-adapter-faceid_sd15.bin"
    torch.save(sd, path)
    return path


def test_sd15_adapter_on_sdxl_names_both(tmp_path):
    adapter = ipa.load_ipadapter(_sd15_adapter(tmp_path))
    assert adapter.base == "SD1.5"
    with pytest.raises(errors.I2PError) as err:
        ipa.check_for_model(adapter, 2048, "I2P Apply Identity")
    msg = str(err.value)
    assert "SD1.5" in msg and "SDXL" in msg and "768" in msg and "2048" in msg and "ip-adapter-faceid_sd15.bin" in msg


def test_wrong_clip_names_both(files):
    plus = ipa.load_ipadapter(files["faceid-plusv2-sdxl"])
    with pytest.raises(errors.I2PError) as err:
        ipa.check_for_clip(plus, 1664, 1280, "CLIP-ViT-bigG-14.safetensors", "I2P Apply Identity")
    msg = str(err.value)
    assert "ViT-bigG" in msg and "CLIP-ViT-bigG-14.safetensors" in msg and plus.name in msg
    assert "hidden width 64" in msg  # what the (tiny) adapter needs
    ipa.check_for_clip(plus, 64, 32, "ok", "x")  # the matching one passes
    plain = ipa.load_ipadapter(files["ip-adapter-sdxl-vit-h"])
    with pytest.raises(errors.I2PError, match="image_embeds width 32"):
        ipa.check_for_clip(plain, 64, 48, "other.safetensors", "x")


# ---------------------------------------------------------------------------------- projection
def _ln(x, sd, p):
    return F.layer_norm(x, (x.shape[-1],), sd[f"{p}.weight"].float(), sd[f"{p}.bias"].float())


def reference_plus(sd, emb, clip, v2, s):
    """FaceID Plus tokens computed directly from the original key layout (reference formulas)."""
    sd = {k: v.float() for k, v in sd.items()}
    d = sd["norm.weight"].shape[0]
    x = F.linear(F.gelu(F.linear(emb, sd["proj.0.weight"], sd["proj.0.bias"])), sd["proj.2.weight"], sd["proj.2.bias"])
    x = _ln(x.reshape(emb.shape[0], -1, d), sd, "norm")
    lat = x
    pr = "perceiver_resampler"
    c = F.linear(clip, sd[f"{pr}.proj_in.weight"], sd[f"{pr}.proj_in.bias"])
    heads = sd[f"{pr}.layers.0.0.to_q.weight"].shape[0] // 64
    for i in range(4):
        p = f"{pr}.layers.{i}"
        xn, ln = _ln(c, sd, f"{p}.0.norm1"), _ln(lat, sd, f"{p}.0.norm2")
        q = ln @ sd[f"{p}.0.to_q.weight"].T
        k, v = (torch.cat([xn, ln], 1) @ sd[f"{p}.0.to_kv.weight"].T).chunk(2, dim=-1)
        b, nq, _ = q.shape
        split = lambda t: t.reshape(b, t.shape[1], heads, 64).transpose(1, 2)  # noqa: E731
        w = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(64), dim=-1)
        o = (w @ split(v)).transpose(1, 2).reshape(b, nq, -1)
        lat = o @ sd[f"{p}.0.to_out.weight"].T + lat
        h = _ln(lat, sd, f"{p}.1.0")
        lat = F.gelu(h @ sd[f"{p}.1.1.weight"].T) @ sd[f"{p}.1.3.weight"].T + lat
    out = _ln(F.linear(lat, sd[f"{pr}.proj_out.weight"], sd[f"{pr}.proj_out.bias"]), sd, f"{pr}.norm_out")
    return x + s * out if v2 else out


def test_plus_projection_matches_direct_computation(files):
    plus = ipa.load_ipadapter(files["faceid-plusv2-sdxl"])
    gen = torch.Generator().manual_seed(1)
    emb = F.normalize(torch.randn(2, 512, generator=gen), dim=-1)
    clip = torch.randn(2, 257, plus.clip_hidden, generator=gen)
    uclip = torch.randn(1, 257, plus.clip_hidden, generator=gen)
    ident = enc.Identity(embedding=emb, clip_hidden=clip, clip_uncond_hidden=uclip, sources=2)
    for s in (0.0, 1.0, 2.5):
        cond, uncond = proj_mod.project(plus, ident, s)
        assert cond.shape == (2, 4, plus.token_dim)
        torch.testing.assert_close(cond, reference_plus(plus.image_proj, emb, clip, True, s), atol=2e-4, rtol=1e-4)
        # uncond: zero ArcFace embedding + the CLIP features of the uncond input
        torch.testing.assert_close(uncond, reference_plus(plus.image_proj, torch.zeros(1, 512), uclip, True, s),
                                   atol=2e-4, rtol=1e-4)
    plus.is_v2 = False  # v1: the resampler output alone, no shortcut
    cond, _ = proj_mod.project(plus, ident, 2.5)
    torch.testing.assert_close(cond, reference_plus(plus.image_proj, emb, clip, False, 0), atol=2e-4, rtol=1e-4)


def test_faceid_and_plain_projection_direct(files):
    faceid = ipa.load_ipadapter(files["faceid-sdxl"])
    sd = {k: v.float() for k, v in faceid.image_proj.items()}
    emb = F.normalize(torch.randn(1, 512), dim=-1)
    cond, uncond = proj_mod.project(faceid, enc.Identity(embedding=emb), 1.0)
    d = sd["norm.weight"].shape[0]
    direct = F.linear(F.gelu(F.linear(emb, sd["proj.0.weight"], sd["proj.0.bias"])), sd["proj.2.weight"], sd["proj.2.bias"])
    torch.testing.assert_close(cond, _ln(direct.reshape(1, 4, d), sd, "norm"), atol=1e-5, rtol=1e-5)
    assert uncond.shape == cond.shape and not torch.allclose(uncond, cond)
    plain = ipa.load_ipadapter(files["ip-adapter-sdxl-vit-h"])
    sdp = {k: v.float() for k, v in plain.image_proj.items()}
    embeds = torch.randn(1, plain.clip_projection)
    cond, uncond = proj_mod.project(plain, enc.Identity(clip_embeds=embeds), 1.0)
    direct = _ln(F.linear(embeds, sdp["proj.weight"], sdp["proj.bias"]).reshape(1, 4, -1), sdp, "norm")
    torch.testing.assert_close(cond, direct, atol=1e-5, rtol=1e-5)
    zero = _ln(F.linear(torch.zeros_like(embeds), sdp["proj.weight"], sdp["proj.bias"]).reshape(1, 4, -1), sdp, "norm")
    torch.testing.assert_close(uncond, zero, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------- attention
def direct_attention(q, k, v, heads):
    b, n, c = q.shape
    d = c // heads
    qh = q.reshape(b, n, heads, d).permute(0, 2, 1, 3)
    kh = k.reshape(k.shape[0], k.shape[1], heads, d).permute(0, 2, 1, 3)
    vh = v.reshape(v.shape[0], v.shape[1], heads, d).permute(0, 2, 1, 3)
    w = torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(d), dim=-1)
    return (w @ vh).permute(0, 2, 1, 3).reshape(b, n, c)


def _patch(weight=0.7, mask=None, n_id=1, c=64, d=32, t=4):
    gen = torch.Generator().manual_seed(3)
    cond = torch.randn(n_id, t, d, generator=gen)
    uncond = torch.randn(1, t, d, generator=gen)
    wk = [torch.randn(c, d, generator=gen) * 0.2 for _ in range(70)]
    wv = [torch.randn(c, d, generator=gen) * 0.2 for _ in range(70)]
    return attn.IdentityPatch(cond, uncond, wk, wv, weight=weight, mask=mask), cond, uncond, wk, wv


def test_layer_patch_equals_direct_decoupled_attention():
    patch, cond, uncond, wk, wv = _patch()
    q, k, v = torch.randn(4, 16, 64), torch.randn(4, 77, 64), torch.randn(4, 77, 64)
    opts = {"n_heads": 2, "cond_or_uncond": [1, 0]}  # first half uncond, second half cond (CFG batch)
    out = patch.layer_fn(5)(q, k, v, opts)
    text = direct_attention(q, k, v, 2)
    ku, vu = uncond @ wk[5].T, uncond @ wv[5].T
    kc, vc = cond @ wk[5].T, cond @ wv[5].T
    ip = torch.cat([direct_attention(q[:2], ku.expand(2, -1, -1), vu.expand(2, -1, -1), 2),
                    direct_attention(q[2:], kc.expand(2, -1, -1), vc.expand(2, -1, -1), 2)])
    torch.testing.assert_close(out, text + 0.7 * ip, atol=1e-5, rtol=1e-5)
    # weight 0 leaves the layer exactly as it was
    patch.weight = 0.0
    torch.testing.assert_close(patch.layer_fn(5)(q, k, v, opts), text, atol=1e-5, rtol=1e-5)


def test_several_identities_per_image_or_concatenated():
    patch, cond, *_ = _patch(n_id=2)
    q = torch.randn(4, 9, 64)
    k_cat, _ = patch.kv(0, 0, per_chunk=3, device=q.device, dtype=q.dtype)
    assert k_cat.shape == (1, 8, 64)  # 2 identities x 4 tokens, concatenated for a batch of 3
    k_each, _ = patch.kv(0, 0, per_chunk=2, device=q.device, dtype=q.dtype)
    assert k_each.shape == (2, 4, 64)  # one identity per image


def test_concatenated_identities_term_equals_direct():
    """Two identities on a batch of one per chunk: their 8 tokens are concatenated (cond) while the
    uncond has 4, so the term runs per chunk; it still equals the direct computation."""
    patch, cond, uncond, wk, wv = _patch(n_id=2, weight=0.5)
    q = torch.randn(2, 16, 64)
    opts = {"n_heads": 2, "cond_or_uncond": [0, 1]}
    got = patch.term(7, q, opts)
    kc, vc = cond.reshape(1, -1, 32) @ wk[7].T, cond.reshape(1, -1, 32) @ wv[7].T
    ku, vu = uncond @ wk[7].T, uncond @ wv[7].T
    want = torch.cat([direct_attention(q[:1], kc, vc, 2), direct_attention(q[1:], ku, vu, 2)]) * 0.5
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_mask_resized_to_each_layer_grid():
    mask = torch.zeros(1, 64, 96)
    mask[:, :, 48:] = 1.0  # right half only
    patch, *_ = _patch(mask=mask)
    h, w = 8, 12
    q, k, v = torch.randn(2, h * w, 64), torch.randn(2, 77, 64), torch.randn(2, 77, 64)
    opts = {"n_heads": 2, "cond_or_uncond": [0, 1], "activations_shape": [2, 64, h, w]}
    out = patch.layer_fn(0)(q, k, v, opts)
    text = direct_attention(q, k, v, 2)
    diff = (out - text).abs().sum(-1).reshape(2, h, w)
    assert float(diff[:, :, : w // 2 - 1].max()) < 1e-5  # no identity outside the mask
    assert float(diff[:, :, w // 2 + 1:].min()) > 1e-3
    # a mask handed in at sampling time (a crop's own mask) replaces the node's
    left = 1.0 - mask
    out2 = patch.layer_fn(0)(q, k, v, dict(opts, i2p_identity_mask=left))
    diff2 = (out2 - text).abs().sum(-1).reshape(2, h, w)
    assert float(diff2[:, :, w // 2 + 1:].max()) < 1e-5 and float(diff2[:, :, : w // 2 - 1].min()) > 1e-3
    # without activations_shape the grid comes from the latent size (SDXL halves with ceil)
    assert attn._grid(13 * 17, {"original_shape": [2, 4, 50, 66]}) == (13, 17)


def test_patch_model_is_a_clone_with_70_layers_and_does_not_stack(caplog):
    base = FakePatcher()
    base.model_options["transformer_options"]["keep"] = 1
    patch, *_ = _patch()
    patch.info = {"mode": "faceid_plus_v2", "weight": 0.7, "start_at": 0.0, "stop_at": 0.9}
    m1, msg1 = attn.patch_model(base, patch)
    assert m1 is not base and msg1 == ""
    assert base.model_options == {"transformer_options": {"keep": 1}} and base.calls == [] and base.wrappers == {}
    assert sorted(m1.calls) == sorted(attn.SDXL_ATTN2_LAYERS) and len(set(m1.calls)) == 70
    assert {b for b, _, _ in m1.calls} == {"input", "middle", "output"}
    replace = m1.model_options["transformer_options"]["patches_replace"]["attn2"]
    assert all(fn.layer == i for i, fn in enumerate(replace[key] for key in attn.SDXL_ATTN2_LAYERS))
    assert m1.model_options["transformer_options"]["i2p_identity"]["stop_at"] == 0.9
    assert len(m1.wrappers["sampler_sample"]["i2p_identity"]) == 1
    # applying again on the patched model replaces ours (no stacking) and says so
    patch2, *_ = _patch(weight=0.3)
    patch2.info = {"mode": "faceid", "weight": 0.3}
    m2, msg2 = attn.patch_model(m1, patch2)
    assert "replaced, not stacked" in msg2
    r2 = m2.model_options["transformer_options"]["patches_replace"]["attn2"]
    assert all(fn.patch is patch2 and fn.inner is None for fn in r2.values())
    assert len(m2.wrappers["sampler_sample"]["i2p_identity"]) == 1
    assert all(fn.patch is patch for fn in replace.values())  # m1 itself is untouched
    q, k, v = torch.randn(2, 16, 64), torch.randn(2, 77, 64), torch.randn(2, 77, 64)
    opts = {"n_heads": 2, "cond_or_uncond": [0, 1]}
    key = attn.SDXL_ATTN2_LAYERS[3]
    single = patch2.layer_fn(3)(q, k, v, opts)
    torch.testing.assert_close(r2[key](q, k, v, opts), single)


def test_foreign_attn2_patch_is_chained_not_dropped():
    base = FakePatcher()
    seen = []

    def foreign(q, k, v, extra):
        seen.append(1)
        return direct_attention(q, k, v, extra["n_heads"]) * 2.0

    key = attn.SDXL_ATTN2_LAYERS[0]
    base.set_model_attn2_replace(foreign, *key)
    patch, *_ = _patch()
    m, msg = attn.patch_model(base, patch)
    assert "chained" in msg
    q, k, v = torch.randn(2, 16, 64), torch.randn(2, 77, 64), torch.randn(2, 77, 64)
    opts = {"n_heads": 2, "cond_or_uncond": [0, 1]}
    out = m.model_options["transformer_options"]["patches_replace"]["attn2"][key](q, k, v, opts)
    assert seen == [1]
    torch.testing.assert_close(out, foreign(q, k, v, opts) + patch.term(0, q, opts))
    m2, _ = attn.patch_model(m, _patch()[0])  # re-applying keeps the foreign patch under ours
    assert m2.model_options["transformer_options"]["patches_replace"]["attn2"][key].inner is foreign
