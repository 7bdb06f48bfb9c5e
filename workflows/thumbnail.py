"""A thumbnail of a UI-format workflow: groups, node boxes with their titles, and the links.

ComfyUI shows ``<name>.jpg`` beside ``<name>.json`` in its template browser; a picture of the graph
tells at a glance what the template does.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WIDTH = 960
TITLE_H = 30
SLOT_H = 22
TYPE_COLORS = {"IMAGE": "#64b5f6", "MASK": "#81c784", "MODEL": "#b39ddb", "CLIP": "#ffd500",
               "VAE": "#ff6e6e", "CONDITIONING": "#ffa931", "LATENT": "#ff9cf9", "STRING": "#aaaaaa",
               "FLOAT": "#aaee88", "CLIP_VISION": "#a8dadc"}
NODE_HEADER = {"IP-to-Portrait": "#2e5d8a", "image": "#3a5a3a", "model": "#5a3a5a"}


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _hex(color: str, alpha: int = 255) -> tuple[int, int, int, int]:
    color = color.lstrip("#")
    if len(color) == 3:
        color = "".join(c * 2 for c in color)
    return int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16), alpha


def _fit(text: str, font, width: float, draw: ImageDraw.ImageDraw) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def render(ui: dict, path: Path, width: int = WIDTH) -> None:
    nodes = {n["id"]: n for n in ui["nodes"]}
    boxes = [g["bounding"] for g in ui.get("groups", [])]
    boxes += [[n["pos"][0], n["pos"][1] - TITLE_H, n["size"][0], n["size"][1] + TITLE_H] for n in nodes.values()]
    x0 = min(b[0] for b in boxes) - 20
    y0 = min(b[1] for b in boxes) - 20
    x1 = max(b[0] + b[2] for b in boxes) + 20
    y1 = max(b[1] + b[3] for b in boxes) + 20
    scale = width / (x1 - x0)
    height = max(240, int((y1 - y0) * scale))

    def p(x: float, y: float) -> tuple[float, float]:
        return (x - x0) * scale, (y - y0) * scale

    img = Image.new("RGBA", (width, height), _hex("#1e1e1e"))
    overlay = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    small, tiny = _font(13), _font(10)
    for g in ui.get("groups", []):
        x, y, w, h = g["bounding"]
        draw.rectangle([*p(x, y), *p(x + w, y + h)], fill=_hex(g.get("color", "#3f789e"), 70),
                       outline=_hex(g.get("color", "#3f789e"), 200))
        draw.text((p(x, y)[0] + 5, p(x, y)[1] + 3), g["title"], font=small, fill=_hex("#dddddd"))
    for link_id, src, src_slot, dst, dst_slot, typ in ui.get("links", []):
        a, b = nodes[src], nodes[dst]
        start = p(a["pos"][0] + a["size"][0], a["pos"][1] + SLOT_H * src_slot + SLOT_H / 2)
        end = p(b["pos"][0], b["pos"][1] + SLOT_H * dst_slot + SLOT_H / 2)
        dx = max(20.0, (end[0] - start[0]) / 2)
        points = []
        for i in range(21):  # a cubic bezier, like the editor's splines
            t = i / 20
            c1, c2 = (start[0] + dx, start[1]), (end[0] - dx, end[1])
            px = (1 - t) ** 3 * start[0] + 3 * (1 - t) ** 2 * t * c1[0] + 3 * (1 - t) * t ** 2 * c2[0] + t ** 3 * end[0]
            py = (1 - t) ** 3 * start[1] + 3 * (1 - t) ** 2 * t * c1[1] + 3 * (1 - t) * t ** 2 * c2[1] + t ** 3 * end[1]
            points.append((px, py))
        draw.line(points, fill=_hex(TYPE_COLORS.get(typ, "#bbbbbb"), 230), width=2)
    for n in nodes.values():
        x, y = n["pos"]
        w, h = n["size"]
        top_left, bottom_right = p(x, y - TITLE_H), p(x + w, y + h)
        note = n["type"] in ("Note", "MarkdownNote")
        body = _hex(n.get("bgcolor", "#353535"))
        draw.rounded_rectangle([*top_left, *bottom_right], radius=4, fill=body, outline=_hex("#000000"))
        header = n.get("color") or next((c for k, c in NODE_HEADER.items() if n["type"].startswith("I2P") and
                                          k == "IP-to-Portrait"), "#444444")
        draw.rounded_rectangle([*top_left, bottom_right[0], p(x, y)[1]], radius=4, fill=_hex(header))
        label_w = bottom_right[0] - top_left[0] - 8
        draw.text((top_left[0] + 4, top_left[1] + 2), _fit(n.get("title") or n["type"], small, label_w, draw),
                  font=small, fill=_hex("#ffffff"))
        if note:
            text = str((n.get("widgets_values") or [""])[0])
            ty = p(x, y)[1] + 4
            for line in text.splitlines():
                if ty > bottom_right[1] - 12:
                    break
                draw.text((top_left[0] + 4, ty), _fit(line, tiny, label_w, draw), font=tiny, fill=_hex("#eeeeee"))
                ty += 12
        elif n.get("title") and n["title"] != n["type"]:
            draw.text((top_left[0] + 4, p(x, y)[1] + 3), _fit(n["type"], tiny, label_w, draw), font=tiny,
                      fill=_hex("#999999"))
    img = Image.alpha_composite(img, overlay).convert("RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="JPEG", quality=88, optimize=True)
