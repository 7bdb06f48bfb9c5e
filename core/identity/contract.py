"""The identity → inpaint contract: what the identity stage leaves in a MODEL's options for later stages.

The identity patch travels inside the MODEL (its attn2 replace patches), so a sampling node further
down the graph cannot see it except through ``model_options["transformer_options"]``. Two keys form
the contract, owned here and imported (never re-spelled) by the inpaint stage:

- ``OPTIONS_KEY``: the patch's settings (mode, weight, start_at, stop_at, masked, adapter, ...), a
  plain dict; the inpaint node reports the active steps from it and knows whether a mask is in use.
- ``MASK_OPTION``: a per-sampling attention mask. The identity node's mask is drawn on the whole
  photo; a node that samples a crop puts the crop's own mask here (same region, the crop's frame) and
  the patch prefers it (see ``IdentityPatch.layer_mask``).

Plain dict handling on a duck-typed ModelPatcher (``clone`` / ``model_options``): no ComfyUI import.
"""
from __future__ import annotations

OPTIONS_KEY = "i2p_identity"
MASK_OPTION = "i2p_identity_mask"
#: class attribute that marks the pack's own attn2 replace functions (attention.LayerPatch)
PATCH_MARKER = "i2p_identity_patch"


def _transformer_options(model) -> dict:
    return (getattr(model, "model_options", None) or {}).get("transformer_options", {})


def identity_info(model) -> dict | None:
    """The identity patch's settings when the MODEL carries one, else None."""
    return _transformer_options(model).get(OPTIONS_KEY)


def set_identity_info(model, info: dict) -> None:
    """Record the patch's settings on ``model`` (a clone the caller owns): a fresh transformer_options
    dict, so the MODEL it was cloned from keeps its own."""
    to = dict(_transformer_options(model))
    to[OPTIONS_KEY] = dict(info)
    model.model_options["transformer_options"] = to


def with_crop_mask(model, crop_mask):
    """A clone of ``model`` whose identity patch is gated by ``crop_mask`` (B, H, W) in the crop's frame,
    when the patch was given a mask at all; else ``model`` itself. The input MODEL stays untouched, so
    other branches of the graph keep the whole-photo mask."""
    info = identity_info(model)
    if not info or not info.get("masked") or crop_mask is None:
        return model
    clone = model.clone()
    to = dict(_transformer_options(clone))
    to[MASK_OPTION] = crop_mask.reshape(-1, *crop_mask.shape[-2:])
    clone.model_options["transformer_options"] = to
    return clone


def without_identity_patch(model):
    """A clone of ``model`` without this pack's identity patch (its attn2 replace functions and
    settings), for architectures it was not made for (a DiT edit model); a foreign patch it was
    chained to stays. The MODEL the rest of the graph sees is untouched. Returns (model, whether
    anything was removed)."""
    if not identity_info(model):
        return model, False
    clone = model.clone()
    to = dict(_transformer_options(clone))
    to.pop(OPTIONS_KEY, None)
    to.pop(MASK_OPTION, None)
    replace = dict(to.get("patches_replace", {}))
    if "attn2" in replace:
        kept = {}
        for key, fn in replace["attn2"].items():
            if getattr(fn, PATCH_MARKER, False):
                fn = getattr(fn, "inner", None)
            if fn is not None:
                kept[key] = fn
        replace["attn2"] = kept
        to["patches_replace"] = replace
    clone.model_options["transformer_options"] = to
    return clone, True
