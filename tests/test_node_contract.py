"""Every node is a well-formed ComfyUI V1 node of this pack."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from packload import PACK_ROOT, load_pack

OBJECT_INFO = Path(__file__).parent / "data" / "comfyui-0.33.0-core-object_info.json"
COMFY_TYPES_WITH_WIDGET = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def _nodes():
    return sorted(load_pack().NODE_CLASS_MAPPINGS.items())


def test_there_are_nodes():
    assert len(_nodes()) > 0


@pytest.mark.parametrize("node_id,cls", _nodes(), ids=[n for n, _ in _nodes()])
def test_node_is_well_formed(node_id, cls):
    pack = load_pack()
    assert node_id.startswith("I2P"), node_id
    assert node_id in pack.NODE_DISPLAY_NAME_MAPPINGS, f"{node_id} has no display name"
    assert isinstance(cls.CATEGORY, str) and cls.CATEGORY.startswith("IP-to-Portrait/"), cls.CATEGORY
    assert isinstance(cls.FUNCTION, str) and callable(getattr(cls, cls.FUNCTION, None))
    assert isinstance(cls.RETURN_TYPES, tuple)
    if hasattr(cls, "RETURN_NAMES"):
        assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES)
    if hasattr(cls, "OUTPUT_TOOLTIPS"):
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES)
    assert getattr(cls, "DESCRIPTION", ""), f"{node_id} has no DESCRIPTION"
    spec = cls.INPUT_TYPES()
    assert set(spec) <= {"required", "optional", "hidden"}
    for section in ("required", "optional"):
        for name, value in spec.get(section, {}).items():
            assert isinstance(value, tuple) and 1 <= len(value) <= 2, (node_id, name)
            opts = value[1] if len(value) == 2 else {}
            assert opts.get("tooltip"), f"{node_id}.{name} has no tooltip"
            typ = value[0]
            if isinstance(typ, list):  # a combo: default must be one of its values
                if "default" in opts:
                    assert opts["default"] in typ, (node_id, name)
            elif typ in ("INT", "FLOAT"):
                lo, hi = opts.get("min"), opts.get("max")
                if lo is not None and hi is not None and "default" in opts:
                    assert lo <= opts["default"] <= hi, (node_id, name)


def test_no_clash_with_core_nodes():
    core = json.loads(OBJECT_INFO.read_text())
    clashes = sorted(set(core) & set(load_pack().NODE_CLASS_MAPPINGS))
    assert clashes == []
