"""The streaming random text-encoder writer (tests/model_factory/text_encoders.py) on a small module
with ComfyUI's text-encoder constructor signature; the real Qwen3-4B file is built and loaded by
ComfyUI's CLIPLoader in the comfyui tier (tests/test_workflows.py, edit_model_portrait)."""
from __future__ import annotations

import hashlib

import pytest
import torch
from safetensors import safe_open

from model_factory import text_encoders as te


class TinyLM(torch.nn.Module):
    """Keys like ComfyUI's Llama2_: embeddings, per-layer projections with and without bias, RMSNorm
    weights, a final norm."""

    def __init__(self, config_dict, dtype, device, operations):
        super().__init__()
        vocab, hidden = config_dict.get("vocab", 300), config_dict.get("hidden", 48)
        self.embed_tokens = operations.Embedding(vocab, hidden, device=device, dtype=dtype)
        self.layers = torch.nn.ModuleList(torch.nn.ModuleDict({
            "q_proj": operations.Linear(hidden, hidden, bias=True, device=device, dtype=dtype),
            "down_proj": operations.Linear(hidden, 2 * hidden, bias=False, device=device, dtype=dtype),
            "q_norm": torch.nn.RMSNorm(hidden, device=device, dtype=dtype),
        }) for _ in range(2))
        self.norm = torch.nn.RMSNorm(hidden, device=device, dtype=dtype)


def _write(path, dtype=torch.float8_e4m3fn, seed=3, **config):
    return te.write_random_text_encoder(TinyLM, path, dtype=dtype, seed=seed, config_dict=config, operations=torch.nn)


def _load(path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.bfloat16])
def test_file_has_every_key_of_the_class_at_its_shape_in_the_dtype(tmp_path, dtype, monkeypatch):
    monkeypatch.setattr(te, "_CHUNK_ELEMENTS", 1000)  # the embeddings and projections span several chunks
    path = _write(tmp_path / "te.safetensors", dtype)
    sd = _load(path)
    model = TinyLM({}, torch.float32, "cpu", torch.nn)
    assert {k: tuple(v.shape) for k, v in sd.items()} == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {v.dtype for v in sd.values()} == {dtype}
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    assert torch.equal(sd["norm.weight"].float(), torch.ones(48))
    assert torch.equal(sd["layers.0.q_norm.weight"].float(), torch.ones(48))
    assert torch.equal(sd["layers.1.q_proj.bias"].float(), torch.zeros(48))
    emb = sd["embed_tokens.weight"].float()
    assert torch.isfinite(emb).all() and 0.01 < emb.std().item() < 0.03  # seeded normal * 0.02
    assert not torch.equal(emb[:20], emb[20:40])  # chunks are not repeats
    assert not path.with_name(path.name + ".part").exists()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    digest = [hashlib.sha256(_write(tmp_path / f"{i}.safetensors", seed=s).read_bytes()).hexdigest()
              for i, s in enumerate((3, 3, 4))]
    assert digest[0] == digest[1] != digest[2]


def test_unsupported_dtype_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="unsupported dtype"):
        _write(tmp_path / "te.safetensors", dtype=torch.int8)
    assert list(tmp_path.iterdir()) == []
