"""stop_at is exact: with N steps run, the identity term is on in exactly round(stop*N) - round(start*N)
steps, for every scheduler, sampler kind and denoise.

Sigma schedules are simulated with the formulas of ComfyUI's schedulers (SDXL's discrete
scaled-linear noise schedule; karras, normal, exponential, sgm_uniform) and KSampler's denoise rule
(``int(steps/denoise)`` sigmas, keep the last ``steps+1``). Samplers are simulated by where they call
the model: once per step (euler), twice with the second call between entries (dpm_2, dpmpp_sde) or
exactly on the next entry (heun; dpm_2_ancestral with eta=1), three times (heunpp2); each calls the
step callback after its first evaluation, as k-diffusion does. The real ComfyUI schedulers and
samplers are exercised in tests/test_identity_comfyui.py when COMFYUI_PATH is set.
"""
from __future__ import annotations

import math

import pytest
import torch

from packload import pack_module

stop_at = pack_module("core.identity.stop_at")
attn = pack_module("core.identity.attention")


# ---------------------------------------------------------------------------------- schedules
def sdxl_sigmas() -> torch.Tensor:
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    ac = torch.cumprod(1.0 - betas, 0)
    return ((1 - ac) / ac) ** 0.5


SIGMAS = sdxl_sigmas()
LOG_SIGMAS = SIGMAS.log()
SMIN, SMAX = float(SIGMAS[0]), float(SIGMAS[-1])


def sigma_of_t(t: float) -> float:
    lo = int(math.floor(t))
    hi = min(lo + 1, 999)
    w = t - lo
    return float(((1 - w) * LOG_SIGMAS[lo] + w * LOG_SIGMAS[hi]).exp())


def t_of_sigma(s: float) -> float:
    ls = math.log(s)
    idx = int(torch.searchsorted(LOG_SIGMAS, torch.tensor(ls, dtype=torch.float64)).clamp(1, 999))
    lo, hi = float(LOG_SIGMAS[idx - 1]), float(LOG_SIGMAS[idx])
    return idx - 1 + (ls - lo) / (hi - lo)


def schedule(name: str, n: int) -> list[float]:
    if name == "karras":
        rho = 7.0
        a, b = SMAX ** (1 / rho), SMIN ** (1 / rho)
        return [(a + i / (n - 1) * (b - a)) ** rho for i in range(n)] + [0.0]
    if name == "exponential":
        return [math.exp(math.log(SMAX) + i / (n - 1) * (math.log(SMIN) - math.log(SMAX))) for i in range(n)] + [0.0]
    start, end = t_of_sigma(SMAX), t_of_sigma(SMIN)
    if name == "normal":
        ts = [start + i / (n - 1) * (end - start) for i in range(n)]
    elif name == "sgm_uniform":
        ts = [start + i / n * (end - start) for i in range(n)]
    else:
        raise ValueError(name)
    return [sigma_of_t(t) for t in ts] + [0.0]


def ksampler_sigmas(scheduler: str, steps: int, denoise: float) -> list[float]:
    if denoise >= 0.9999:
        return schedule(scheduler, steps)
    total = int(steps / denoise)
    return schedule(scheduler, total)[-(steps + 1):]


# ------------------------------------------------------------------------------------ samplers
def sampler_calls(kind: str, sig: list[float]):
    """Yield ("eval", true_step, sigma) and ("callback", i) in the order a k-diffusion sampler makes them."""
    n = len(sig) - 1
    for i in range(n):
        yield ("eval", i, sig[i])
        yield ("callback", i)
        nxt = sig[i + 1]
        if kind in ("dpm_2", "dpmpp_sde") and nxt > 0:
            yield ("eval", i, math.sqrt(sig[i] * nxt) if kind == "dpm_2" else math.exp((math.log(sig[i]) + math.log(nxt)) / 2 + 0.05 * (math.log(nxt) - math.log(sig[i]))))
        elif kind == "heun" and nxt > 0:
            yield ("eval", i, nxt)
        elif kind == "dpm_2_ancestral":
            down = nxt ** 2 / sig[i]
            if down > 0:
                yield ("eval", i, math.exp((math.log(sig[i]) + math.log(down)) / 2))  # == sigma_{i+1}
        elif kind == "heunpp2":
            if i + 2 <= n and sig[i + 2] > 0:
                yield ("eval", i, nxt)
                yield ("eval", i, sig[i + 2])
            elif nxt > 0:
                yield ("eval", i, nxt)


SAMPLER_FUNCTIONS = {"euler": "sample_euler", "dpm_2": "sample_dpm_2", "dpmpp_sde": "sample_dpmpp_sde",
                     "heun": "sample_heun", "dpm_2_ancestral": "sample_dpm_2_ancestral",
                     "heunpp2": "sample_heunpp2"}


def make_patch(start: float, stop: float):
    d = 8
    tokens = torch.randn(1, 4, d)
    patch = attn.IdentityPatch(tokens, torch.zeros(1, 4, d), [torch.randn(d, d)], [torch.randn(d, d)],
                               weight=1.0, start_at=start, stop_at=stop)
    patch.trace = []
    return patch


def run_sampler(patch, kind: str, sig: list[float], with_wrapper: bool = True):
    """Drive the patch like ComfyUI does; returns [(true_step, applied)] per model evaluation."""
    layer = patch.layer_fn(0)
    schedule_t = torch.tensor(sig)
    q = torch.randn(2, 4, 8)
    record = []

    def sample(guider, sigmas, extra_args, callback, noise):
        for ev in sampler_calls(kind, sig):
            if ev[0] == "callback":
                if callback is not None:
                    callback(ev[1], None, None, len(sig) - 1)
                continue
            _, true_step, s = ev
            opts = {"sigmas": torch.tensor([s, s], dtype=torch.float32), "sample_sigmas": schedule_t,
                    "cond_or_uncond": [1, 0], "n_heads": 2}
            before = len(patch.trace)
            layer(q, q, q, opts)
            record.append((true_step, len(patch.trace) > before))

    if with_wrapper:
        class Sampler:  # what ComfyUI's executor exposes as class_obj
            sampler_function = type("F", (), {})()

        Sampler.sampler_function.__name__ = SAMPLER_FUNCTIONS[kind]

        class Executor:
            class_obj = Sampler()

            def __call__(self, *args, **kwargs):
                return sample(*args, **kwargs)

        stop_at.SamplerStepWrapper(patch.gate)(Executor(), "guider", schedule_t, {}, None, None)
    else:
        sample("guider", schedule_t, {}, None, None)
    return record


def expected(start, stop, n):
    return max(0, math.floor(stop * n + 0.5) - math.floor(start * n + 0.5))


# --------------------------------------------------------------------------------------- tests
def test_active_steps_counts():
    assert stop_at.active_steps(0.0, 0.9, 30) == range(0, 27)
    assert stop_at.active_steps(0.1, 0.9, 30) == range(3, 27)
    assert len(stop_at.active_steps(0.0, 0.5, 5)) == 3  # halves round up, not to even
    assert len(stop_at.active_steps(0.6, 0.4, 10)) == 0
    assert stop_at.active_steps(0.0, 1.0, 7) == range(7)
    assert "27 steps" in stop_at.describe(0.0, 0.9, 30)


def test_step_index_rules():
    sig = [10.0, 5.0, 2.0, 1.0, 0.0]
    assert [stop_at.step_index(s, sig) for s in sig[:-1]] == [0, 1, 2, 3]
    assert stop_at.step_index(7.0, sig) == 0  # between entries: the step whose sigma is just above
    assert stop_at.step_index(5.0 * (1 + 1e-4), sig) == 1  # tolerant match (fp16 round trips)
    assert stop_at.step_index(0.5, sig) == 3
    assert stop_at.step_index(12.0, sig) == 0


@pytest.mark.parametrize("scheduler", ["karras", "normal", "exponential", "sgm_uniform"])
@pytest.mark.parametrize("denoise", [0.6, 0.9, 1.0])
@pytest.mark.parametrize("kind", list(SAMPLER_FUNCTIONS))
def test_term_active_in_exact_step_count(scheduler, denoise, kind):
    for steps, start, stop in ((30, 0.0, 0.9), (20, 0.1, 0.8), (25, 0.0, 0.5), (9, 0.35, 1.0), (12, 0.0, 0.0)):
        sig = ksampler_sigmas(scheduler, steps, denoise)
        assert len(sig) == steps + 1 and all(a > b for a, b in zip(sig, sig[1:]))
        patch = make_patch(start, stop)
        record = run_sampler(patch, kind, sig)
        active = set(stop_at.active_steps(start, stop, steps))
        # every evaluation of a step agrees with that step's state ...
        wrong = [(s, a) for s, a in record if a != (s in active)]
        assert wrong == [], (scheduler, denoise, kind, steps, start, stop, wrong[:5])
        # ... so the steps in which the term was applied number exactly round(stop*N) - round(start*N)
        applied_steps = {s for s, a in record if a}
        assert len(applied_steps) == expected(start, stop, steps)


@pytest.mark.parametrize("kind", ["euler", "dpm_2", "dpmpp_sde"])
def test_sigma_rule_alone_is_exact_for_single_and_midpoint_samplers(kind):
    """Without ComfyUI's wrapper (no step callbacks) the schedule lookup alone is exact for samplers
    whose extra calls fall strictly between schedule entries."""
    sig = ksampler_sigmas("karras", 30, 0.9)
    patch = make_patch(0.1, 0.9)
    record = run_sampler(patch, kind, sig, with_wrapper=False)
    active = set(stop_at.active_steps(0.1, 0.9, 30))
    assert all(a == (s in active) for s, a in record)


def test_heun_needs_the_step_callback():
    """heun's corrector sits exactly on the next sigma: without the callback it would be counted in the
    next step (a documented limitation of the sigma rule alone); with it, the step count is exact."""
    sig = ksampler_sigmas("normal", 20, 1.0)
    active = set(stop_at.active_steps(0.2, 0.8, 20))
    bare = run_sampler(make_patch(0.2, 0.8), "heun", sig, with_wrapper=False)
    assert any(a != (s in active) for s, a in bare)
    wrapped = run_sampler(make_patch(0.2, 0.8), "heun", sig, with_wrapper=True)
    assert all(a == (s in active) for s, a in wrapped)


def test_gate_caches_per_model_call_and_handles_missing_schedule():
    gate = stop_at.StepGate(0.0, 0.5)
    sched = torch.tensor([3.0, 2.0, 1.0, 0.5, 0.0])
    s = torch.tensor([2.0])
    first = gate.check({"sigmas": s, "sample_sigmas": sched})
    assert first == (True, 1, 4)
    assert gate.check({"sigmas": s, "sample_sigmas": sched}) is first
    assert gate.check({"sigmas": torch.tensor([1.0]), "sample_sigmas": sched}) == (False, 2, 4)
    assert gate.check({})[0] is True  # no schedule: on (the user asked for the identity)
    assert stop_at.StepGate(0.5, 0.5).check({})[0] is False
