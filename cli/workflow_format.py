"""The two workflow formats of ComfyUI and the rules that tie them together.

UI (graph) format, what the editor saves and loads: ``nodes`` with positional ``widgets_values`` and
``links`` as ``[id, from_node, from_slot, to_node, to_slot, TYPE]``. API format, what ``/prompt``
executes: ``{id: {"class_type", "inputs": {name: value | [src_id, slot]}}}``.

Widget order is the node's input order (required, then optional); the editor adds one extra value
after an INT widget named ``seed``/``noise_seed`` (or any INT/combo whose options set
``control_after_generate``): the "control after generate" mode, which never reaches the API format.
A ``LoadImage``-style combo with ``image_upload`` may carry the upload button's value ("image") after
it. Schemas here are ``/object_info`` entries; :func:`schema_from_class` builds one from a V1 node.
"""
from __future__ import annotations

from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
#: Frontend-only nodes: they live in UI files and never reach /prompt.
VIRTUAL_NODES = {"Note", "MarkdownNote"}
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")


class WorkflowFormatError(ValueError):
    """A workflow file that cannot be read or converted."""


def schema_from_class(name: str, cls) -> dict:
    """An ``/object_info`` entry for a V1 node class, so pack and core nodes are checked alike."""
    spec = cls.INPUT_TYPES()
    inputs, order = {}, {}
    for section in ("required", "optional", "hidden"):
        part = spec.get(section) or {}
        inputs[section] = {k: list(v) if isinstance(v, tuple) else v for k, v in part.items()}
        order[section] = list(part)
    returns = list(getattr(cls, "RETURN_TYPES", ()))
    return {
        "name": name,
        "input": inputs,
        "input_order": order,
        "output": returns,
        "output_name": list(getattr(cls, "RETURN_NAMES", None) or returns),
        "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
        "category": getattr(cls, "CATEGORY", ""),
    }


def ordered_inputs(schema: dict) -> list[tuple[str, Any, dict, str]]:
    """``(name, type, options, section)`` for every required then optional input, in declared order."""
    result = []
    for section in ("required", "optional"):
        specs = (schema.get("input") or {}).get(section) or {}
        names = (schema.get("input_order") or {}).get(section) or list(specs)
        for name in names:
            if name not in specs:
                continue
            spec = specs[name]
            typ = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            result.append((name, typ, opts, section))
    return result


def combo_options(typ: Any, opts: dict) -> list | None:
    """The values of a combo input (old list style or new ``"COMBO", {"options": [...]}``), else None."""
    if isinstance(typ, list):
        return typ
    if typ == "COMBO":
        return list(opts.get("options", []))
    return None


def is_widget(typ: Any, opts: dict) -> bool:
    if opts.get("forceInput"):
        return False
    return isinstance(typ, list) or typ in WIDGET_TYPES


def has_control_widget(name: str, typ: Any, opts: dict) -> bool:
    """The editor's "control after generate" companion widget (see the module docstring)."""
    flag = opts.get("control_after_generate")
    if typ == "INT":
        return bool(flag) if flag is not None else name in ("seed", "noise_seed")
    return combo_options(typ, opts) is not None and bool(flag)


def widget_layout(schema: dict) -> list[tuple[str, str]]:
    """The positional meaning of ``widgets_values``: ``(input name, kind)`` with kind ``value``,
    ``control`` or ``upload`` (the optional upload-button value)."""
    layout = []
    for name, typ, opts, _ in ordered_inputs(schema):
        if not is_widget(typ, opts):
            continue
        layout.append((name, "value"))
        if has_control_widget(name, typ, opts):
            layout.append((name, "control"))
        if opts.get("image_upload"):
            layout.append((name, "upload"))
    return layout


def widget_values_by_name(node: dict, schema: dict) -> dict[str, Any]:
    """Map a UI node's positional ``widgets_values`` onto input names (values only)."""
    values = node.get("widgets_values") or []
    if isinstance(values, dict):
        return dict(values)
    layout = widget_layout(schema)
    if len(values) != len(layout):  # newer editors do not write the upload button's value
        layout = [k for k in layout if k[1] != "upload"]
    named = {}
    for (name, kind), value in zip(layout, values):
        if kind == "value":
            named[name] = value
    return named


def is_ui_format(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list)


def is_api_format(data: Any) -> bool:
    return isinstance(data, dict) and bool(data) and all(
        isinstance(v, dict) and "class_type" in v for v in data.values())


def ui_to_api(ui: dict, schemas: dict[str, dict]) -> dict:
    """Convert a UI-format workflow to the API format the way the editor's "Export (API)" does."""
    links = {link[0]: link for link in ui.get("links", [])}
    api: dict[str, dict] = {}
    for node in ui["nodes"]:
        ntype = node.get("type")
        if ntype in VIRTUAL_NODES:
            continue
        if node.get("mode", 0) in (2, 4):  # muted / bypassed nodes are not sent
            raise WorkflowFormatError(f"node {node['id']} ({ntype}) is muted or bypassed; unmute it or remove it")
        schema = schemas.get(ntype)
        if schema is None:
            raise WorkflowFormatError(f"node {node['id']}: unknown node type '{ntype}' (missing custom node?)")
        inputs: dict[str, Any] = dict(widget_values_by_name(node, schema))
        for slot in node.get("inputs", []) or []:
            link_id = slot.get("link")
            if link_id is None:
                continue
            if link_id not in links:
                raise WorkflowFormatError(f"node {node['id']}: input '{slot['name']}' names missing link {link_id}")
            _, src, src_slot, *_ = links[link_id]
            src_node = next((n for n in ui["nodes"] if n["id"] == src), None)
            if src_node is not None and src_node.get("type") in VIRTUAL_NODES:
                raise WorkflowFormatError(f"node {node['id']}: input '{slot['name']}' comes from a {src_node['type']}")
            name = (slot.get("widget") or {}).get("name") or slot["name"]
            inputs[name] = [str(src), src_slot]
        entry = {"class_type": ntype, "inputs": inputs}
        entry["_meta"] = {"title": node.get("title") or schema.get("display_name") or ntype}
        api[str(node["id"])] = entry
    return api


def graph_edges_api(api: dict) -> set[tuple[str, int, str, str]]:
    """``(src, slot, dst, input)`` for every link of an API-format prompt."""
    edges = set()
    for nid, node in api.items():
        for name, value in node.get("inputs", {}).items():
            if is_link(value):
                edges.add((str(value[0]), int(value[1]), str(nid), name))
    return edges


def is_link(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and isinstance(value[1], int) and not isinstance(value[1], bool))


def types_match(output_type: str, input_type: Any) -> bool:
    """ComfyUI's link rule: ``*`` matches anything; comma-separated type lists must overlap."""
    if isinstance(input_type, list):  # a combo fed by a link: the source must give a combo/string
        return output_type in ("*", "COMBO", "STRING") or "," in output_type
    if output_type == "*" or input_type == "*":
        return True
    if output_type == input_type:
        return True
    a = {t.strip() for t in str(output_type).split(",")}
    b = {t.strip() for t in str(input_type).split(",")}
    return bool(a & b)


def node_titles(api: dict) -> dict[str, str]:
    return {nid: (node.get("_meta") or {}).get("title", node["class_type"]) for nid, node in api.items()}


def output_nodes(api: dict, schemas: dict[str, dict]) -> list[str]:
    return [nid for nid, node in api.items() if (schemas.get(node["class_type"]) or {}).get("output_node")]

