"""One Python description of a workflow, written out in both of ComfyUI's formats.

A :class:`Graph` holds nodes whose inputs are literal widget values or links (``node["output"]``);
widget values left out take the node's default. From it come the UI/graph file the editor opens
(positional ``widgets_values`` in input order, the "control after generate" value after seed widgets,
links, groups, a Note) and the API file ``/prompt`` executes, so the two cannot drift apart.
Node schemas are ``/object_info`` entries: the pack's from its ``NODE_CLASS_MAPPINGS``, core ones from
the captured object_info of ComfyUI 0.33.0.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACK_ROOT = Path(__file__).resolve().parent.parent
CORE_OBJECT_INFO = PACK_ROOT / "tests" / "data" / "comfyui-0.33.0-core-object_info.json"
PACK_MODULE = "i2p_pack_for_workflow_build"

NOTE_WIDTH = 420
COLUMN_GAP = 60
ROW_GAP = 40
GROUP_PAD = 20
GROUP_TITLE = 40
NODE_TITLE = 30
GROUP_GAP = 50


def load_pack():
    """The pack, imported the way ComfyUI does (by file path, under a mangled name)."""
    if PACK_MODULE not in sys.modules:
        spec = importlib.util.spec_from_file_location(PACK_MODULE, PACK_ROOT / "__init__.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACK_MODULE] = module
        spec.loader.exec_module(module)
    return sys.modules[PACK_MODULE]


def pack_module(dotted: str):
    load_pack()
    return importlib.import_module(f"{PACK_MODULE}.{dotted}")


def load_schemas() -> dict[str, dict]:
    """Core and pack node schemas, keyed by class type."""
    fmt = pack_module("cli.workflow_format")
    pack = load_pack()
    schemas = json.loads(CORE_OBJECT_INFO.read_text())["nodes"]
    for name, cls in pack.NODE_CLASS_MAPPINGS.items():
        schema = fmt.schema_from_class(name, cls)
        schema["display_name"] = pack.NODE_DISPLAY_NAME_MAPPINGS.get(name, name)
        schemas[name] = schema
    return schemas


@dataclass(frozen=True)
class Out:
    node: "Node"
    slot: int


@dataclass
class Node:
    id: int
    class_type: str
    title: str
    group: str
    inputs: dict[str, Any]
    schema: dict
    pos: list[float] = field(default_factory=lambda: [0.0, 0.0])
    size: list[float] = field(default_factory=lambda: [320.0, 100.0])

    def __getitem__(self, key: int | str) -> Out:
        names = self.schema.get("output_name") or self.schema.get("output", [])
        if isinstance(key, str):
            if key not in names:
                raise KeyError(f"{self.class_type} has no output '{key}' (outputs: {names})")
            key = names.index(key)
        if not 0 <= key < len(self.schema.get("output", [])):
            raise KeyError(f"{self.class_type} has no output {key}")
        return Out(self, key)


class Graph:
    def __init__(self, name: str, title: str, description: str, schemas: dict[str, dict],
                 groups: list[str]):
        self.name = name
        self.title = title
        self.description = description
        self.schemas = schemas
        self.group_order = groups
        self.nodes: list[Node] = []
        self._fmt = pack_module("cli.workflow_format")

    # building --------------------------------------------------------------------------------
    def add(self, class_type: str, group: str, title: str | None = None, **values) -> Node:
        if class_type not in self.schemas:
            raise KeyError(f"{self.name}: node type {class_type} does not exist")
        if group not in self.group_order:
            raise KeyError(f"{self.name}: group '{group}' is not declared")
        schema = self.schemas[class_type]
        spec = {n: (t, o, s) for n, t, o, s in self._fmt.ordered_inputs(schema)}
        unknown = set(values) - set(spec)
        if unknown:
            raise KeyError(f"{self.name}: {class_type} has no input(s) {sorted(unknown)}; inputs: {list(spec)}")
        inputs: dict[str, Any] = {}
        for name, (typ, opts, section) in spec.items():
            if name in values:
                inputs[name] = values[name]
            elif self._fmt.is_widget(typ, opts):
                inputs[name] = self._default(class_type, name, typ, opts)
            elif section == "required":
                raise KeyError(f"{self.name}: {class_type} needs its input '{name}' linked")
        node = Node(len(self.nodes) + 1, class_type, title or schema.get("display_name") or class_type,
                    group, inputs, schema)
        self.nodes.append(node)
        return node

    def _default(self, class_type: str, name: str, typ, opts: dict):
        if "default" in opts:
            return opts["default"]
        options = self._fmt.combo_options(typ, opts)
        if options:
            return options[0]
        if typ in ("INT", "FLOAT"):
            return opts.get("min", 0)
        if typ == "STRING":
            return ""
        if typ == "BOOLEAN":
            return False
        raise KeyError(f"{self.name}: {class_type}.{name} has no default; give it a value")

    def links(self) -> list[tuple[int, Node, int, Node, str, str]]:
        """(link id, source, slot, target, input name, type) in a stable order."""
        result = []
        for node in self.nodes:
            for name, value in node.inputs.items():
                if isinstance(value, Out):
                    typ = value.node.schema["output"][value.slot]
                    result.append((len(result) + 1, value.node, value.slot, node, name, typ))
        return result

    # layout ----------------------------------------------------------------------------------
    def _node_size(self, node: Node) -> list[float]:
        sockets = sum(1 for n, t, o, _ in self._fmt.ordered_inputs(node.schema)
                      if not self._fmt.is_widget(t, o) or isinstance(node.inputs.get(n), Out))
        slots = max(sockets, len(node.schema.get("output", [])))
        widgets = len([k for k in self._fmt.widget_layout(node.schema) if k[1] != "upload"])
        height = 30 + 22 * slots + 24 * widgets
        if node.class_type == "LoadImage":
            height += 260  # the image preview
        multiline = [n for n, t, o, _ in self._fmt.ordered_inputs(node.schema) if o.get("multiline")]
        height += 70 * len(multiline)
        return [340.0 if node.class_type != "LoadImage" else 320.0, float(height)]

    def layout(self) -> dict[str, list[float]]:
        """Groups left to right; inside a group, columns by link depth. Returns group boxes."""
        depth: dict[int, int] = {}
        for node in self.nodes:  # nodes are added after their sources, so one pass is enough
            deps = [v.node for v in node.inputs.values() if isinstance(v, Out) and v.node.group == node.group]
            depth[node.id] = 1 + max((depth[d.id] for d in deps), default=-1)
            node.size = self._node_size(node)
        boxes: dict[str, list[float]] = {}
        x = NOTE_WIDTH + GROUP_GAP
        for group in self.group_order:
            members = [n for n in self.nodes if n.group == group]
            if not members:
                continue
            columns: dict[int, list[Node]] = {}
            for n in members:
                columns.setdefault(depth[n.id], []).append(n)
            gx = x
            bottom = 0.0
            for col in sorted(columns):
                y = GROUP_TITLE + NODE_TITLE + GROUP_PAD  # a node's title bar sits above its pos
                width = max(n.size[0] for n in columns[col])
                for n in columns[col]:
                    n.pos = [x + GROUP_PAD, y]
                    y += n.size[1] + ROW_GAP
                bottom = max(bottom, y)
                x += width + COLUMN_GAP
            x += 2 * GROUP_PAD - COLUMN_GAP
            boxes[group] = [gx, 0.0, x - gx, bottom - ROW_GAP + GROUP_PAD]
            x += GROUP_GAP
        return boxes

    # writing ---------------------------------------------------------------------------------
    def to_api(self) -> dict:
        api = {}
        for node in self.nodes:
            inputs = {}
            for name, value in node.inputs.items():
                inputs[name] = [str(value.node.id), value.slot] if isinstance(value, Out) else value
            api[str(node.id)] = {"inputs": inputs, "class_type": node.class_type, "_meta": {"title": node.title}}
        return api

    def to_ui(self) -> dict:
        boxes = self.layout()
        links = self.links()
        fmt = self._fmt
        order = {n.id: i for i, n in enumerate(self.nodes)}
        ui_nodes = []
        for node in self.nodes:
            ins = []
            for name, typ, opts, _ in fmt.ordered_inputs(node.schema):
                link = next((l[0] for l in links if l[3] is node and l[4] == name), None)
                if fmt.is_widget(typ, opts):
                    if link is not None:
                        slot_type = "COMBO" if fmt.combo_options(typ, opts) is not None else typ
                        ins.append({"name": name, "localized_name": name, "type": slot_type,
                                    "widget": {"name": name}, "link": link})
                    continue
                ins.append({"name": name, "localized_name": name, "type": typ, "link": link})
            outs = []
            names = node.schema.get("output_name") or node.schema.get("output", [])
            for slot, typ in enumerate(node.schema.get("output", [])):
                outs.append({"name": names[slot], "localized_name": names[slot], "type": typ,
                             "links": [l[0] for l in links if l[1] is node and l[2] == slot], "slot_index": slot})
            values = []
            for name, kind in fmt.widget_layout(node.schema):
                value = node.inputs.get(name)
                if kind == "value" and isinstance(value, Out):  # a linked widget keeps a value
                    spec = {n: (t, o) for n, t, o, _ in fmt.ordered_inputs(node.schema)}[name]
                    values.append(self._default(node.class_type, name, *spec))
                elif kind == "value":
                    values.append(value)
                elif kind == "control":
                    values.append("fixed")
                else:
                    values.append("image")
            ui_nodes.append({"id": node.id, "type": node.class_type, "pos": node.pos, "size": node.size,
                             "flags": {}, "order": order[node.id], "mode": 0, "inputs": ins, "outputs": outs,
                             "title": node.title, "properties": {"Node name for S&R": node.class_type},
                             "widgets_values": values})
        note_id = len(self.nodes) + 1
        ui_nodes.append({"id": note_id, "type": "Note", "pos": [0.0, GROUP_TITLE + NODE_TITLE], "size": [NOTE_WIDTH - 20, 400.0],
                         "flags": {}, "order": len(self.nodes), "mode": 0, "inputs": [], "outputs": [],
                         "title": self.title, "properties": {}, "widgets_values": [self.description],
                         "color": "#432", "bgcolor": "#653"})
        groups = [{"id": i + 1, "title": g, "bounding": [round(v, 1) for v in box], "color": GROUP_COLORS[i % 6],
                   "font_size": 24, "flags": {}} for i, (g, box) in enumerate(boxes.items())]
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"ip-to-portrait/workflows/{self.name}")),
            "revision": 0,
            "last_node_id": note_id,
            "last_link_id": len(links),
            "nodes": ui_nodes,
            "links": [[l[0], l[1].id, l[2], l[3].id, _input_slot(fmt, l[3], l[4]), l[5]] for l in links],
            "groups": groups,
            "config": {},
            "extra": {"ds": {"scale": 0.6, "offset": [40, 60]},
                      "info": {"name": self.title, "source": "IP-to-Portrait workflows/build.py"}},
            "version": 0.4,
        }


GROUP_COLORS = ("#3f789e", "#8A8", "#b58b2a", "#a1309b", "#88A", "#b06634")


def _input_slot(fmt, node: Node, input_name: str) -> int:
    """Index of ``input_name`` among the UI node's input slots (sockets + linked widgets)."""
    slot = 0
    for name, typ, opts, _ in fmt.ordered_inputs(node.schema):
        if fmt.is_widget(typ, opts) and not isinstance(node.inputs.get(name), Out):
            continue
        if name == input_name:
            return slot
        slot += 1
    raise KeyError(input_name)
