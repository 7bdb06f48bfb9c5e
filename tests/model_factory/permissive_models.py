"""The permissive face-analysis pair: a YuNet-format detector that OpenCV's own ``cv2.FaceDetectorYN``
loads and runs, and an AuraFace-format recognizer (``glintr100.onnx``, ArcFace layout).

YuNet's contract with OpenCV (``modules/objdetect/src/face_detect.cpp``): one input ``input``
(1, 3, H, W), raw BGR 0..255, H and W padded up to a multiple of 32 with black at the bottom/right;
twelve outputs ``cls_{8,16,32}``, ``obj_*`` (1, N, 1), ``bbox_*`` (1, N, 4), ``kps_*`` (1, N, 10) with one
anchor per cell, N = (H/s)(W/s) in row-major order. OpenCV decodes a cell (c, r) at stride s as score
sqrt(cls*obj), centre ((c + b0) s, (r + b1) s), size (exp(b2) s, exp(b3) s), landmark k at
((kx + c) s, (ky + r) s), then applies NMS.

The detector is a deterministic fake like the SCRFD one (see ``insightface_models``): it reports the
faces it was built with (:data:`DEFAULT_FACES`, positions as fractions of the image's non-black extent)
wherever the image is, each from the one cell per stride whose point lies within half a stride of the
face centre (NMS merges the three). A pure black image has no faces. The ``full`` profile adds a
convolutional branch of YuNet's size whose result is multiplied by zero.

The recognizer is the ArcFace builder of ``insightface_models`` (input ``input.1`` (N, 3, 112, 112),
one (N, 512) output) with AuraFace's IResNet-100 stage layout in ``full`` and its own seed, so its
embeddings differ from buffalo_l's for the same crop, as the real models' do.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import builder
from .insightface_models import DEFAULT_FACES, _Graph, _save, build_arcface

YUNET_STRIDES = (8, 16, 32)


def build_yunet(dest: Path, profile: str = "tiny", faces=DEFAULT_FACES) -> None:
    from onnx import TensorProto, helper

    g = _Graph(seed=40)
    x = "input"
    faces = tuple(faces)
    lit = g.op("Cast", [g.op("Greater", [x, g.const(0.5)])], to=TensorProto.FLOAT)
    lit = g.op("ReduceMax", [lit], axes=[1], keepdims=1)  # (1,1,H,W): any channel above black
    col_any = g.op("ReduceMax", [lit], axes=[0, 1, 2], keepdims=0)  # (W,)
    row_any = g.op("ReduceMax", [lit], axes=[0, 1, 3], keepdims=0)  # (H,)
    shape = g.op("Shape", [x])

    def extent(any_vec: str, axis: int) -> str:  # index of the last non-black column / row, plus one
        n = g.op("Gather", [shape, g.const(axis, np.int64)], axis=0)
        idx = g.op("Range", [g.const(1, np.int64), g.op("Add", [n, g.const(1, np.int64)]), g.const(1, np.int64)])
        idx = g.op("Cast", [idx], to=TensorProto.FLOAT)
        return g.op("ReduceMax", [g.op("Mul", [any_vec, idx])], keepdims=0)

    cw, ch = extent(col_any, 3), extent(row_any, 2)
    present = g.op("Mul", [g.op("Min", [cw, g.const(1.0)]), g.op("Min", [ch, g.const(1.0)])])

    def fx(values) -> str:  # (1,F) fractions of the width -> pixels
        return g.op("Mul", [g.const(np.asarray(values, np.float32)[None]), cw])

    def fy(values) -> str:
        return g.op("Mul", [g.const(np.asarray(values, np.float32)[None]), ch])

    cx = fx([(f.box[0] + f.box[2]) / 2 for f in faces])
    cy = fy([(f.box[1] + f.box[3]) / 2 for f in faces])
    bw = fx([f.box[2] - f.box[0] for f in faces])
    bh = fy([f.box[3] - f.box[1] for f in faces])
    kx = [fx([f.kps[k][0] for f in faces]) for k in range(5)]
    ky = [fy([f.kps[k][1] for f in faces]) for k in range(5)]
    score_row = g.op("Mul", [g.const(np.asarray([f.score for f in faces], np.float32)[None]), present])

    heavy = None
    if profile == "full":  # YuNet is ~75 k parameters; a branch of about its cost
        feat, _ = g.conv_chain(x, 3, [(16, 2), (32, 2), (64, 2), (64, 1), (64, 2), (64, 1)])
        heavy = g.op("Mul", [g.op("ReduceMean", [feat], keepdims=0), g.const(0.0)])

    outs = {}
    for s in YUNET_STRIDES:
        fm = g.op("MaxPool", [x], kernel_shape=[s, s], strides=[s, s])
        fshape = g.op("Shape", [fm])
        hs = g.op("Gather", [fshape, g.const(2, np.int64)], axis=0)
        ws = g.op("Gather", [fshape, g.const(3, np.int64)], axis=0)
        zero, one = g.const(0, np.int64), g.const(1, np.int64)
        cols = g.op("Cast", [g.op("Range", [zero, ws, one])], to=TensorProto.FLOAT)  # c
        rows = g.op("Cast", [g.op("Range", [zero, hs, one])], to=TensorProto.FLOAT)  # r
        gc = g.op("Add", [g.op("Unsqueeze", [cols, g.const([0], np.int64)]),
                          g.op("Unsqueeze", [g.op("Mul", [rows, g.const(0.0)]), g.const([1], np.int64)])])
        gr = g.op("Add", [g.op("Unsqueeze", [rows, g.const([1], np.int64)]),
                          g.op("Unsqueeze", [g.op("Mul", [cols, g.const(0.0)]), g.const([0], np.int64)])])
        gc = g.op("Reshape", [gc, g.const([-1, 1], np.int64)])  # (N,1), row-major cells
        gr = g.op("Reshape", [gr, g.const([-1, 1], np.int64)])
        ax, ay = g.op("Mul", [gc, g.const(float(s))]), g.op("Mul", [gr, g.const(float(s))])
        half = g.const(s / 2 + 1e-3)
        match = g.op("And", [g.op("Less", [g.op("Abs", [g.op("Sub", [ax, cx])]), half]),
                             g.op("Less", [g.op("Abs", [g.op("Sub", [ay, cy])]), half])])
        match = g.op("Cast", [match], to=TensorProto.FLOAT)  # (N, F)
        inv_s = g.const(1.0 / s)

        def pick(value: str) -> str:  # (N,F) values -> (N,1): this cell's face
            return g.op("ReduceSum", [g.op("Mul", [value, match]), g.const([1], np.int64)], keepdims=1)

        def unit(v: str, grid: str) -> str:  # pixels -> offset from the cell in stride units
            return g.op("Sub", [g.op("Mul", [v, inv_s]), grid])

        score = pick(g.op("Add", [g.op("Mul", [g.op("Add", [ax, g.const(0.0)]), g.const(0.0)]), score_row]))
        if heavy is not None:
            score = g.op("Add", [score, heavy])
        box = g.op("Concat", [pick(unit(cx, gc)), pick(unit(cy, gr)),
                              pick(g.op("Log", [g.op("Mul", [bw, inv_s])])),
                              pick(g.op("Log", [g.op("Mul", [bh, inv_s])]))], axis=1)
        kp = []
        for k in range(5):
            kp += [pick(unit(kx[k], gc)), pick(unit(ky[k], gr))]
        kps = g.op("Concat", kp, axis=1)
        batch = g.const([0], np.int64)
        outs[f"cls_{s}"] = g.op("Unsqueeze", [score, batch], out=f"cls_{s}")
        outs[f"obj_{s}"] = g.op("Unsqueeze", [g.op("Identity", [score]), batch], out=f"obj_{s}")
        outs[f"bbox_{s}"] = g.op("Unsqueeze", [box, batch], out=f"bbox_{s}")
        outs[f"kps_{s}"] = g.op("Unsqueeze", [kps, batch], out=f"kps_{s}")
    inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 3, "h", "w"])]
    outputs = []
    for kind, width in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10)):
        for s in YUNET_STRIDES:
            outputs.append(helper.make_tensor_value_info(f"{kind}_{s}", TensorProto.FLOAT, [1, f"n{s}", width]))
    _save(g.model(inputs, outputs), dest)


@builder("yunet-2023mar")
def _yunet(dest: Path, profile: str) -> None:
    build_yunet(dest, profile)


@builder("auraface-v1")
def _auraface(dest: Path, profile: str) -> None:
    build_arcface(dest, profile, seed=50, stages=((64, 3), (128, 13), (256, 30), (512, 3)))
