"""The factory builds every manifest entry in the real file format, under the real file name."""
from __future__ import annotations

import hashlib
import zipfile

import pytest

import model_factory
from packload import pack_module

manifest = pack_module("models.manifest")
IDS = [m.id for m in manifest.MODELS]

# What each file format starts with: a builder that wrote the wrong format fails here.
MAGIC = {
    ".safetensors": lambda head: int.from_bytes(head[:8], "little") < 100_000_000 and head[8:9] == b"{",
    ".onnx": lambda head: head[:1] == b"\x08",  # protobuf field 1 (ir_version), varint
    ".json": lambda head: head.lstrip()[:1] == b"{",
}


def test_every_manifest_entry_has_a_builder():
    model_factory._discover()
    assert sorted(set(IDS) - set(model_factory.BUILDERS)) == []


@pytest.mark.parametrize("model_id", IDS)
def test_builds_in_the_real_format(model_id, test_models):
    entry = manifest.by_id(model_id)
    path = test_models.get(model_id)
    assert path == test_models.root / entry.folder / entry.filename
    assert path.is_file() and path.stat().st_size > 0
    suffix = path.suffix.lower()
    head = path.read_bytes()[:16]
    if suffix in MAGIC:
        assert MAGIC[suffix](head), f"{path.name} does not look like a {suffix} file"
    elif suffix in (".pth", ".bin", ".pt"):  # torch.save's zip container
        assert zipfile.is_zipfile(path), f"{path.name} is not a torch.save file"
    assert not path.with_name(path.name + ".part").exists()


def test_builds_are_deterministic(tmp_path):
    """Seeded builders give the same bytes twice (checked on the small files)."""
    for model_id in ("buffalo_l-w600k_r50", "faceid-plusv2-sdxl-lora", "inswapper_128"):
        a = model_factory.build(model_id, tmp_path / "a")
        b = model_factory.build(model_id, tmp_path / "b")
        assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest(), model_id
