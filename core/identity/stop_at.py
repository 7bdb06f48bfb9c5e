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


#: ComfyUI k-diffusion samplers whose extra evaluations of step i, made after the step callback,
#: can land exactly on the *next* schedule sigma (heun's corrector, the ancestral midpoints with
#: eta=1, where sqrt(sigma_i * sigma_down) == sigma_{i+1}), with at most this many extra evaluations.
#: A sigma alone cannot tell those from the next step's first evaluation.
EXTRA_EVALS_AT_NEXT_SIGMA = {
    "sample_heun": 1, "sample_heunpp2": 2, "sample_dpm_2_ancestral": 1, "sample_dpm_2_ancestral_RF": 1,
    "sample_dpmpp_2s_ancestral": 1, "sample_dpmpp_2s_ancestral_RF": 1, "sample_dpmpp_2s_ancestral_cfg_pp": 1,
    "sample_exp_heun_2_x0": 1, "sample_exp_heun_2_x0_sde": 1,
}


class StepGate:
    """Decides per model call whether the identity term is on; caches per call, since every one of
    the 70 attention layers of one UNet evaluation asks with the same ``sigmas`` tensor.

    The step comes from the sigma (:func:`step_index`). The one case a sigma cannot settle is a
    sampler in :data:`EXTRA_EVALS_AT_NEXT_SIGMA`: when :class:`SamplerStepWrapper` tells the gate
    the sampler's name and its step callbacks, the up to k calls after ``callback(i)`` whose sigma
    keeps falling are counted in step i.
    """

    def __init__(self, start_at: float, stop_at: float):
        self.start_at = float(start_at)
        self.stop_at = float(stop_at)
        self.extra_evals = 0  # k for the running sampler (0: sigma rule only)
        self._cb: int | None = None  # index of the last step callback
        self._extra_left = 0
        self._last: float | None = None
        self._key = None
        self._keep: tuple = ()
        self._result: tuple[bool, int | None, int | None] = (True, None, None)

    def begin(self, sampler_name: str = "") -> None:
        self.extra_evals = EXTRA_EVALS_AT_NEXT_SIGMA.get(sampler_name, 0)
        self._cb, self._extra_left, self._last, self._key = None, 0, None, None

    def step_done(self, i: int) -> None:
        """The sampler's callback for step i (k-diffusion calls it after the step's first evaluation)."""
        self._cb = int(i)
        self._extra_left = self.extra_evals
        self._last = None

    def end(self) -> None:
        self.extra_evals, self._cb, self._extra_left = 0, None, 0
        self._key, self._keep = None, ()

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
            if self._extra_left > 0 and self._cb is not None:
                if self._last is None or current < self._last - RTOL * max(self._last, 1e-12):
                    step = self._cb  # an extra evaluation of the step that reported last
                    self._extra_left -= 1
                    self._last = current
                else:
                    self._extra_left = 0
            result = (step in active_steps(self.start_at, self.stop_at, n), step, n)
        self._key, self._keep, self._result = key, (sigmas, schedule), result
        return result


class SamplerStepWrapper:
    """A ComfyUI SAMPLER_SAMPLE wrapper that feeds the sampler's per-step callback to a StepGate.

    ComfyUI calls it as ``wrapper(executor, guider, sigmas, extra_args, callback, noise, ...)``; the
    callback is ``callback(i, denoised, x, total_steps)``. Duck-typed: no ComfyUI import.
    """

    def __init__(self, gate: StepGate):
        self.gate = gate

    def __call__(self, executor, *args, **kwargs):
        args = list(args)
        if len(args) > 3:
            original = args[3]
        else:
            original = kwargs.get("callback")
        gate = self.gate

        def callback(i, *rest, **kw):
            gate.step_done(i)
            if original is not None:
                return original(i, *rest, **kw)
            return None

        if len(args) > 3:
            args[3] = callback
        else:
            kwargs["callback"] = callback
        sampler = getattr(getattr(executor, "class_obj", None), "sampler_function", None)
        gate.begin(getattr(sampler, "__name__", ""))
        try:
            return executor(*args, **kwargs)
        finally:
            gate.end()
