"""A thumbnail of a UI-format workflow: a schematic of its stages, node boxes and links.

ComfyUI shows ``<name>.jpg`` beside ``<name>.json`` in its template browser. A literal rendering of a
long left-to-right graph is unreadable at card size, so this draws one column per group (stage), the
nodes of the group as labelled boxes in their vertical order, and the links between them coloured by
type, under the workflow's title.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

SIZE = (960, 540)
HEADER = 54
MARGIN = 14
TYPE_COLORS = {"IMAGE": "#64b5f6", "MASK": "#81c784", "MODEL": "#b39ddb", "CLIP": "#ffd500",
               "VAE": "#ff6e6e", "CONDITIONING": "#ffa931", "LATENT": "#ff9cf9", "STRING": "#cccccc",
               "FLOAT": "#aaee88", "CLIP_VISION": "#a8dadc", "I2P_FACES": "#f48fb1",
               "I2P_FACE_ANALYZER": "#ce93d8"}


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _rgba(color: str, alpha: int = 255) -> tuple[int, int, int, int]:
    color = color.lstrip("#")
    if len(color) == 3:
        color = "".join(c * 2 for c in color)
    return int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16), alpha


def _columns(ui: dict) -> list[tuple[dict, list[dict]]]:
    """(group, its nodes top to bottom) for every group, left to right."""
    groups = sorted(ui.get("groups", []), key=lambda g: g["bounding"][0])
    columns = []
    for g in groups:
        x, y, w, h = g["bounding"]
        members = [n for n in ui["nodes"] if n["type"] not in ("Note", "MarkdownNote")
                   and x <= n["pos"][0] <= x + w and y <= n["pos"][1] <= y + h]
        if members:
            columns.append((g, sorted(members, key=lambda n: (n["pos"][1], n["pos"][0]))))
    return columns


def render(ui: dict, path: Path, size: tuple[int, int] = SIZE) -> None:
    width, height = size
    img = Image.new("RGBA", size, _rgba("#1b1d22"))
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    title_font, group_font, node_font = _font(26), _font(14), _font(12)
    title = (ui.get("extra", {}).get("info", {}) or {}).get("name") or "workflow"
    draw.text((MARGIN, 12), title, font=title_font, fill=_rgba("#ffffff"))

    columns = _columns(ui)
    n_cols = max(1, len(columns))
    gap = 16
    col_w = (width - 2 * MARGIN - gap * (n_cols - 1)) / n_cols
    top = HEADER + 8
    boxes: dict[int, tuple[float, float, float, float]] = {}
    for i, (group, members) in enumerate(columns):
        x0 = MARGIN + i * (col_w + gap)
        draw.rounded_rectangle([x0, top, x0 + col_w, height - MARGIN], radius=8,
                               fill=_rgba(group.get("color", "#3f789e"), 60), outline=_rgba(group.get("color", "#3f789e"), 200))
        label = textwrap.shorten(group["title"], width=int(col_w / 7.5), placeholder="…")
        draw.text((x0 + 8, top + 6), label, font=group_font, fill=_rgba("#e8e8e8"))
        avail = height - MARGIN - (top + 30) - 8
        box_h = min(64.0, (avail - 8 * (len(members) - 1)) / len(members))
        y = top + 30
        for n in members:
            boxes[n["id"]] = (x0 + 8, y, x0 + col_w - 8, y + box_h)
            y += box_h + 8
    for _, src, src_slot, dst, _, typ in ui.get("links", []):
        if src not in boxes or dst not in boxes:
            continue
        a, b = boxes[src], boxes[dst]
        if a[0] == b[0]:  # same column: a short hook on the right edge
            start, end = (a[2], (a[1] + a[3]) / 2), (b[2], (b[1] + b[3]) / 2)
            mid = max(start[0], end[0]) + 6
            points = [start, (mid, start[1]), (mid, end[1]), end]
        else:
            start, end = (a[2], (a[1] + a[3]) / 2), (b[0], (b[1] + b[3]) / 2)
            dx = (end[0] - start[0]) / 2
            points = []
            for k in range(17):  # a cubic bezier, like the editor's splines
                t = k / 16
                px = (1 - t) ** 3 * start[0] + 3 * (1 - t) ** 2 * t * (start[0] + dx) \
                    + 3 * (1 - t) * t ** 2 * (end[0] - dx) + t ** 3 * end[0]
                py = (1 - t) ** 3 * start[1] + 3 * (1 - t) ** 2 * t * start[1] + 3 * (1 - t) * t ** 2 * end[1] + t ** 3 * end[1]
                points.append((px, py))
        draw.line(points, fill=_rgba(TYPE_COLORS.get(typ, "#bbbbbb"), 170), width=2)
    nodes = {n["id"]: n for n in ui["nodes"]}
    for nid, b in boxes.items():  # boxes over the links
        n = nodes[nid]
        box_h = b[3] - b[1]
        draw.rounded_rectangle(b, radius=5, fill=_rgba("#2f3440"), outline=_rgba("#11131a"))
        draw.rectangle([b[0], b[1], b[0] + 4, b[3]], fill=_rgba("#4a90d9" if n["type"].startswith("I2P") else "#8a8f98"))
        chars = max(8, int((b[2] - b[0] - 14) / 6.6))
        lines = textwrap.wrap(n.get("title") or n["type"], width=chars)[: max(1, int((box_h - 6) // 14))]
        ty = b[1] + (box_h - 14 * len(lines)) / 2
        for line in lines:
            draw.text((b[0] + 9, ty), line, font=node_font, fill=_rgba("#ffffff"))
            ty += 14
    img = Image.alpha_composite(img, layer).convert("RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="JPEG", quality=88, optimize=True)
