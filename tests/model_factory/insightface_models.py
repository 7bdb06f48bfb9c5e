"""InsightFace ``buffalo_l`` test pack: five ONNX graphs with the real file names, input/output names
and shapes, so ``insightface.model_zoo.get_model`` routes each of them exactly as it routes the real
files (SCRFD detector, ArcFace recognition, genderage attribute, 2d106 and 3d68 landmarks).

The detector is a deterministic fake
====================================
``det_10g.onnx`` does no learning: it reports the faces it was built with, wherever the image is.
Positions are **fractions of the image's width and height** (x / W, y / H). The graph finds the image
inside SCRFD's letterboxed input (insightface pastes the resized image top-left into a black square)
from its non-black extent, so the fractions hold for any aspect ratio. Consequences:

- a pure black image (every pixel 0) has no faces;
- an image whose right-most columns / bottom rows are pure black counts them as padding, which moves
  the faces (use an image with a non-black border where that matters);
- faces whose centres fall into the same 32-pixel detector cell (tiny inputs) merge.

Default layout (:data:`DEFAULT_FACES`), a couple, chosen so that on ``skimage.data.astronaut()``
face A sits on her real face (eyes, nose tip, mouth corners measured on that photo):

=====  =================================  =====  ==================================================
face   box (x1, y1, x2, y2)               score  5 landmarks (left eye, right eye, nose, mouth L, R)
=====  =================================  =====  ==================================================
A      (0.348, 0.129, 0.523, 0.344)       0.90   (.398,.199) (.482,.202) (.437,.240) (.400,.281) (.474,.281)
B      (0.040, 0.600, 0.180, 0.780)       0.96   (.080,.660) (.140,.660) (.110,.695) (.085,.730) (.135,.730)
=====  =================================  =====  ==================================================

So in detection (score) order the faces are [B, A]; largest-first [A, B]; left-to-right [B, A];
top-to-bottom [A, B]. Build a detector with other faces through ``build_buffalo_pack(dir,
faces=[...])`` (each face a :class:`FakeFace`).

The other graphs
================
- ``w600k_r50.onnx`` (recognition, input ``input.1`` (N,3,112,112), output ``683`` (N,512)): tiny
  conv + pooling + linear in the ``tiny`` profile (different crops give different embeddings); the
  real-size IResNet-50 layout (43.6 M parameters, BN folded into the convolutions) in ``full``.
- ``genderage.onnx`` (input ``data`` (1,3,96,96), output ``fc1`` (1,3)): scores are the mean red and
  mean blue of the crop, so a reddish face reads "female" (insightface: 0 = female, 1 = male) and a
  bluish one "male"; age = 10 + 60 x mean green.
- ``2d106det.onnx`` (``data`` (1,3,192,192) → ``fc1`` (1,212)) and ``1k3d68.onnx`` (→ ``fc1``
  (1,3309)): a fixed random landmark pattern (plus zero x the input).

Profiles: ``tiny`` (kilobytes, milliseconds) and ``full`` (compute branches of the real models' size,
for ``bench/face_stage.py``: a convolutional backbone of SCRFD-10G's cost at the detection size whose
result is multiplied by zero, so the reported faces stay the same; IResNet-50).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import builder

OPSET = 17
IR_VERSION = 8


@dataclass(frozen=True)
class FakeFace:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 as fractions of W, H
    kps: tuple[tuple[float, float], ...]  # 5 (x, y) fractions
    score: float = 0.95


FACE_A = FakeFace((0.348, 0.129, 0.523, 0.344),
                  ((0.398, 0.199), (0.482, 0.202), (0.437, 0.240), (0.400, 0.281), (0.474, 0.281)), 0.90)
FACE_B = FakeFace((0.040, 0.600, 0.180, 0.780),
                  ((0.080, 0.660), (0.140, 0.660), (0.110, 0.695), (0.085, 0.730), (0.135, 0.730)), 0.96)
DEFAULT_FACES = (FACE_A, FACE_B)

SCRFD_OUTPUTS = ("448", "471", "494", "451", "474", "497", "454", "477", "500")
STRIDES = (8, 16, 32)


class _Graph:
    """A small helper around onnx.helper: named nodes, initialisers, fresh names."""

    def __init__(self, seed: int = 0):
        self.nodes = []
        self.inits = []
        self.n = 0
        self.rng = np.random.default_rng(seed)

    def name(self, base: str = "t") -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, value, dtype=np.float32) -> str:
        from onnx import numpy_helper

        name = self.name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs, out: str | None = None, **attrs) -> str:
        from onnx import helper

        out = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=self.name(op_type), **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int = 3, stride: int = 1, gain: float = 1.0,
             bias: bool = True) -> str:
        std = gain * np.sqrt(2.0 / (cin * k * k))
        w = self.const((self.rng.standard_normal((cout, cin, k, k)) * std).astype(np.float32))
        inputs = [x, w]
        if bias:
            inputs.append(self.const(np.zeros(cout, np.float32)))
        return self.op("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4)

    def prelu(self, x: str, ch: int) -> str:
        return self.op("PRelu", [x, self.const(np.full((ch, 1, 1), 0.25, np.float32))])

    def conv_chain(self, x: str, cin: int, specs) -> tuple[str, int]:
        """3x3 conv + ReLU layers given as (out_channels, stride)."""
        for cout, stride in specs:
            x = self.op("Relu", [self.conv(x, cin, cout, 3, stride)])
            cin = cout
        return x, cin

    def model(self, inputs, outputs, producer: str = "i2p-test-factory"):
        from onnx import helper

        graph = helper.make_graph(self.nodes, "g", inputs, outputs, initializer=self.inits)
        m = helper.make_model(graph, producer_name=producer, opset_imports=[helper.make_opsetid("", OPSET)])
        m.ir_version = IR_VERSION
        return m


def _save(model, dest: Path) -> None:
    import onnx

    onnx.checker.check_model(model)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as f:
        f.write(model.SerializeToString())


# -------------------------------------------------------------------------------------------- SCRFD
def build_scrfd(dest: Path, profile: str = "tiny", faces=DEFAULT_FACES) -> None:
    from onnx import TensorProto, helper

    g = _Graph(seed=10)
    x = "input.1"
    faces = tuple(faces)
    # where the image sits inside the letterboxed input: its non-black extent
    lit = g.op("Cast", [g.op("Greater", [x, g.const(-0.99)])], to=TensorProto.FLOAT)
    lit = g.op("ReduceMax", [lit], axes=[1], keepdims=1)  # (1,1,H,W)
    col_any = g.op("ReduceMax", [lit], axes=[0, 1, 2], keepdims=0)  # (W,)
    row_any = g.op("ReduceMax", [lit], axes=[0, 1, 3], keepdims=0)  # (H,)
    shape = g.op("Shape", [x])

    def extent(any_vec: str, axis: int) -> str:
        n = g.op("Gather", [shape, g.const(axis, np.int64)], axis=0)
        idx = g.op("Range", [g.const(1, np.int64), g.op("Add", [n, g.const(1, np.int64)]), g.const(1, np.int64)])
        idx = g.op("Cast", [idx], to=TensorProto.FLOAT)
        return g.op("ReduceMax", [g.op("Mul", [any_vec, idx])], keepdims=0)

    cw, ch = extent(col_any, 3), extent(row_any, 2)
    present = g.op("Mul", [g.op("Min", [cw, g.const(1.0)]), g.op("Min", [ch, g.const(1.0)])])

    def fx(values) -> str:  # (1,F) fractions of the width → pixels
        return g.op("Mul", [g.const(np.asarray(values, np.float32)[None]), cw])

    def fy(values) -> str:
        return g.op("Mul", [g.const(np.asarray(values, np.float32)[None]), ch])

    x1, x2 = fx([f.box[0] for f in faces]), fx([f.box[2] for f in faces])
    y1, y2 = fy([f.box[1] for f in faces]), fy([f.box[3] for f in faces])
    cx = fx([(f.box[0] + f.box[2]) / 2 for f in faces])
    cy = fy([(f.box[1] + f.box[3]) / 2 for f in faces])
    kx = [fx([f.kps[k][0] for f in faces]) for k in range(5)]
    ky = [fy([f.kps[k][1] for f in faces]) for k in range(5)]
    score_row = g.op("Mul", [g.const(np.asarray([f.score for f in faces], np.float32)[None]), present])

    heavy = None
    if profile == "full":
        # a backbone of SCRFD-10G's cost at the detection size: ~12.5 G multiply-adds at 640x640
        # (SCRFD-10G: 10 GFLOPs at 640x480 as mmdet counts them, i.e. multiply-adds: ~13 G at 640x640)
        feat, c = g.conv_chain(x, 3, [(48, 2), (96, 2), (96, 1), (160, 2), (160, 1), (160, 1), (304, 2),
                                      (304, 1), (304, 1), (608, 2), (608, 1)])
        heavy = g.op("Mul", [g.op("ReduceMean", [feat], keepdims=0), g.const(0.0)])

    scores, bboxes, kpss = [], [], []
    for s in STRIDES:
        fm = g.op("MaxPool", [x], kernel_shape=[s, s], strides=[s, s])
        fshape = g.op("Shape", [fm])
        hs = g.op("Gather", [fshape, g.const(2, np.int64)], axis=0)
        ws = g.op("Gather", [fshape, g.const(3, np.int64)], axis=0)
        zero, one = g.const(0, np.int64), g.const(1, np.int64)
        cols = g.op("Mul", [g.op("Cast", [g.op("Range", [zero, ws, one])], to=TensorProto.FLOAT), g.const(float(s))])
        rows = g.op("Mul", [g.op("Cast", [g.op("Range", [zero, hs, one])], to=TensorProto.FLOAT), g.const(float(s))])
        ax = g.op("Add", [g.op("Unsqueeze", [cols, g.const([0], np.int64)]),
                          g.op("Unsqueeze", [g.op("Mul", [rows, g.const(0.0)]), g.const([1], np.int64)])])
        ay = g.op("Add", [g.op("Unsqueeze", [rows, g.const([1], np.int64)]),
                          g.op("Unsqueeze", [g.op("Mul", [cols, g.const(0.0)]), g.const([0], np.int64)])])
        # two anchors per location, consecutive (insightface's order), flattened to (N, 1)
        ax = g.op("Reshape", [g.op("Concat", [g.op("Unsqueeze", [ax, g.const([2], np.int64)])] * 2, axis=2),
                              g.const([-1, 1], np.int64)])
        ay = g.op("Reshape", [g.op("Concat", [g.op("Unsqueeze", [ay, g.const([2], np.int64)])] * 2, axis=2),
                              g.const([-1, 1], np.int64)])
        half = g.const(s / 2 + 1e-3)
        match = g.op("And", [g.op("Less", [g.op("Abs", [g.op("Sub", [ax, cx])]), half]),
                             g.op("Less", [g.op("Abs", [g.op("Sub", [ay, cy])]), half])])
        match = g.op("Cast", [match], to=TensorProto.FLOAT)  # (N, F)
        inv_s = g.const(1.0 / s)

        def pick(dist: str) -> str:  # (N,F) distances in pixels → (N,1) in stride units, this anchor's face
            return g.op("ReduceSum", [g.op("Mul", [g.op("Mul", [dist, inv_s]), match]), g.const([1], np.int64)],
                        keepdims=1)

        sc = g.op("ReduceSum", [g.op("Mul", [match, score_row]), g.const([1], np.int64)], keepdims=1)
        if heavy is not None:
            sc = g.op("Add", [sc, heavy])
        scores.append(g.op("Identity", [sc], out=SCRFD_OUTPUTS[STRIDES.index(s)]))
        box = [pick(g.op("Sub", [ax, x1])), pick(g.op("Sub", [ay, y1])),
               pick(g.op("Sub", [x2, ax])), pick(g.op("Sub", [y2, ay]))]
        bboxes.append(g.op("Concat", box, axis=1, out=SCRFD_OUTPUTS[3 + STRIDES.index(s)]))
        kp = []
        for k in range(5):
            kp += [pick(g.op("Sub", [kx[k], ax])), pick(g.op("Sub", [ky[k], ay]))]
        kpss.append(g.op("Concat", kp, axis=1, out=SCRFD_OUTPUTS[6 + STRIDES.index(s)]))
    inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 3, "?", "?"])]
    outputs = []
    for i, name in enumerate(SCRFD_OUTPUTS):
        width = (1, 4, 10)[i // 3]
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"n{i}", width]))
    _save(g.model(inputs, outputs), dest)


# ------------------------------------------------------------------------------------------ ArcFace
IRESNET50 = ((64, 3), (128, 4), (256, 14), (512, 3))


def build_arcface(dest: Path, profile: str = "tiny", seed: int = 20, stages=IRESNET50) -> None:
    from onnx import TensorProto, helper

    g = _Graph(seed=seed)
    x = "input.1"
    if profile == "full":
        # IResNet (insightface's w600k_r50 by default): stem conv 64 + PReLU, stages of basic blocks
        # (conv3x3, PReLU, conv3x3 with stride), 1x1 projection shortcuts, 512x7x7 → 512 FC.
        h = g.prelu(g.conv(x, 3, 64), 64)
        cin = 64
        for cout, blocks in stages:
            for b in range(blocks):
                stride = 2 if b == 0 else 1
                y = g.prelu(g.conv(h, cin, cout, 3, 1), cout)
                y = g.conv(y, cout, cout, 3, stride, gain=0.2)
                sc = g.conv(h, cin, cout, 1, stride) if (stride != 1 or cin != cout) else h
                h = g.op("Add", [y, sc])
                cin = cout
        feat = g.op("Flatten", [h], axis=1)
        fan = 512 * 7 * 7
    else:
        h, _ = g.conv_chain(x, 3, [(8, 4)])
        h = g.op("AveragePool", [h], kernel_shape=[4, 4], strides=[4, 4])  # (N, 8, 7, 7)
        feat = g.op("Flatten", [h], axis=1)
        fan = 8 * 7 * 7
    w = g.const((g.rng.standard_normal((fan, 512)) / np.sqrt(fan)).astype(np.float32))
    b = g.const(np.zeros(512, np.float32))
    g.op("Add", [g.op("MatMul", [feat, w]), b], out="683")
    inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["None", 3, 112, 112])]
    outputs = [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", 512])]
    _save(g.model(inputs, outputs), dest)


# -------------------------------------------------------------------------- genderage and landmarks
def build_genderage(dest: Path, profile: str = "tiny") -> None:
    from onnx import TensorProto, helper

    g = _Graph(seed=30)
    x = "data"
    mean = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)  # (1,3) RGB means (after swapRB)
    # female score = mean red, male score = mean blue, age fraction = 0.1 + 0.6 * mean green (0..1)
    rgb01 = g.op("Div", [g.op("Add", [mean, g.const(1.0)]), g.const(2.0)])
    proj = g.const(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.6], [0.0, 1.0, 0.0]], np.float32))
    out = g.op("Add", [g.op("MatMul", [rgb01, proj]), g.const(np.array([0, 0, 0.1], np.float32))])
    if profile == "full":
        feat, _ = g.conv_chain(x, 3, [(16, 2), (32, 2), (64, 2), (128, 2), (128, 1)])
        out = g.op("Add", [out, g.op("Mul", [g.op("ReduceMean", [feat], keepdims=0), g.const(0.0)])])
    g.op("Identity", [out], out="fc1")
    inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 3, 96, 96])]
    outputs = [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 3])]
    _save(g.model(inputs, outputs), dest)


def build_landmark(dest: Path, profile: str, n_out: int, seed: int) -> None:
    from onnx import TensorProto, helper

    g = _Graph(seed=seed)
    x = "data"
    pattern = (g.rng.uniform(-0.6, 0.6, (1, n_out))).astype(np.float32)
    if profile == "full":
        specs = [(32, 2), (64, 2), (128, 2), (128, 1), (256, 2), (256, 1)]
        if n_out > 1000:
            specs += [(512, 2), (512, 1), (512, 1)]
        feat, _ = g.conv_chain(x, 3, specs)
        zero = g.op("Mul", [g.op("ReduceMean", [feat], keepdims=0), g.const(0.0)])
    else:
        zero = g.op("Mul", [g.op("ReduceMean", [x], keepdims=0), g.const(0.0)])
    g.op("Add", [g.const(pattern), zero], out="fc1")
    inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 3, 192, 192])]
    outputs = [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, n_out])]
    _save(g.model(inputs, outputs), dest)


@builder("buffalo_l-det_10g")
def _det(dest: Path, profile: str) -> None:
    build_scrfd(dest, profile)


@builder("buffalo_l-w600k_r50")
def _rec(dest: Path, profile: str) -> None:
    build_arcface(dest, profile)


@builder("buffalo_l-genderage")
def _ga(dest: Path, profile: str) -> None:
    build_genderage(dest, profile)


@builder("buffalo_l-2d106det")
def _lmk2d(dest: Path, profile: str) -> None:
    build_landmark(dest, profile, 212, seed=40)


@builder("buffalo_l-1k3d68")
def _lmk3d(dest: Path, profile: str) -> None:
    build_landmark(dest, profile, 3309, seed=41)


def build_buffalo_pack(pack_dir: Path, profile: str = "tiny", faces=DEFAULT_FACES,
                       with_3d68: bool = True) -> Path:
    """A complete buffalo_l-style folder at ``pack_dir`` with a detector that reports ``faces``."""
    pack_dir = Path(pack_dir)
    pack_dir.mkdir(parents=True, exist_ok=True)
    build_scrfd(pack_dir / "det_10g.onnx", profile, faces)
    build_arcface(pack_dir / "w600k_r50.onnx", profile)
    build_genderage(pack_dir / "genderage.onnx", profile)
    build_landmark(pack_dir / "2d106det.onnx", profile, 212, seed=40)
    if with_3d68:
        build_landmark(pack_dir / "1k3d68.onnx", profile, 3309, seed=41)
    return pack_dir
