"""Exact start/stop of the identity term, counted in sampling steps actually run.

Users read "stop at 0.9" with 30 steps as "on for 27 steps". IPAdapter_plus gates on a noise level
instead (``percent_to_sigma``), which turns 0.9 into ~21 of 30 Karras steps; the seed compared
``step / num_inference_steps`` and, with strength < 1, never fired. Here the step is found by
locating the sigma of the current model call in the sampler's own schedule
(``transformer_options["sample_sigmas"]``), so the count holds for every scheduler, for samplers
that call the model twice per step, and for denoise < 1 (ComfyUI keeps the last ``steps + 1``
sigmas of a longer schedule, so N is always the number of steps really run).

Pure Python; no torch needed (tensors are accepted where they are passed in).
"""
from __future__ import annotations

import math
from typing import Sequence

#: relative tolerance when matching a sigma to a schedule entry (fp16/bf16 round trips)
RTOL = 1e-3


def round_half_up(x: float) -> int:
    """round() with halves going up: Python's round(2.5) == 2 would make 0.5 of 5 steps = 2."""
    return int(math.floor(x + 0.5 + 1e-9))


def active_steps(start_at: float, stop_at: float, n_steps: int) -> range:
    """Step indices (0-based) in which the identity term is on.

    Exactly ``round(stop_at*N) - round(start_at*N)`` steps (halves rounded up), never negative.
    """
    n = max(int(n_steps), 0)
    start_at = min(max(float(start_at), 0.0), 1.0)
    stop_at = min(max(float(stop_at), 0.0), 1.0)
    a = round_half_up(start_at * n)
    b = round_half_up(stop_at * n)
    return range(a, max(a, b))


def describe(start_at: float, stop_at: float, n_steps: int) -> str:
    """The line a node shows: "identity active in steps 1..27 of 30 (27 steps)"."""
    steps = active_steps(start_at, stop_at, n_steps)
    if len(steps) == 0:
        return f"identity active in 0 of {n_steps} steps (start_at {start_at:g} / stop_at {stop_at:g})"
    return (f"identity active in steps {steps.start + 1}..{steps.stop} of {n_steps} "
            f"({len(steps)} step{'s' if len(steps) != 1 else ''})")


def _as_floats(values) -> list[float]:
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().tolist()
    elif hasattr(values, "tolist"):
        values = values.tolist()
    if isinstance(values, (int, float)):
        return [float(values)]
    return [float(v) for v in values]


def step_index(sigma: float, sample_sigmas: Sequence[float]) -> int:
    """Which step (0..N-1) a model call at ``sigma`` belongs to.

    ``sample_sigmas`` is the descending schedule of N+1 values (the last usually 0). A call exactly at
    entry i (within RTOL) is step i; a call between entries i and i+1 (second-order and SDE samplers
    evaluate there) belongs to step i, the step whose schedule sigma is just above it.
    """
    sig = _as_floats(sample_sigmas)
    n = len(sig) - 1
    if n <= 0:
        return 0
    s = float(sigma)
    idx = 0
    for i in range(n):  # schedules are short (< 200 entries) and this runs once per model call
        if sig[i] >= s - RTOL * max(abs(sig[i]), 1e-12):
            idx = i
        else:
            break
    return idx


class StepGate:
    """Decides per model call whether the identity term is on; caches per call, since every one of
    the 70 attention layers of one UNet evaluation asks with the same ``sigmas`` tensor."""

    def __init__(self, start_at: float, stop_at: float):
        self.start_at = float(start_at)
        self.stop_at = float(stop_at)
        self._key = None
        self._keep: tuple = ()
        self._result: tuple[bool, int | None, int | None] = (True, None, None)

    def check(self, transformer_options: dict) -> tuple[bool, int | None, int | None]:
        """(active, step index or None, N or None) for the current model call."""
        sigmas = transformer_options.get("sigmas")
        schedule = transformer_options.get("sample_sigmas")
        key = (id(sigmas), id(schedule))
        if key == self._key and self._keep and self._keep[0] is sigmas and self._keep[1] is schedule:
            return self._result
        if sigmas is None or schedule is None:
            # Called outside a sampler (or by one that hides its schedule): without a step count the
            # only honest choice is on, unless the user switched the term off completely.
            result = (self.stop_at > self.start_at, None, None)
        else:
            current = max(_as_floats(sigmas))
            sched = _as_floats(schedule)
            n = len(sched) - 1
            step = step_index(current, sched)
            result = (step in active_steps(self.start_at, self.stop_at, n), step, n)
        self._key, self._keep, self._result = key, (sigmas, schedule), result
        return result
