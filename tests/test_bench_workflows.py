"""The per-node timing of bench/workflows.py, on a recorded event order (no ComfyUI needed)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))


@pytest.fixture(scope="module")
def bench():
    import workflows  # bench/workflows.py

    return workflows


def test_node_time_is_the_gap_to_the_next_event(bench):
    events = [
        (0.0, "execution_start", {}),
        (0.1, "execution_cached", {"nodes": ["1", "2"]}),
        (0.2, "executing", {"node": "3"}),
        (0.5, "progress", {"value": 1, "max": 2}),
        (1.2, "executing", {"node": "4"}),
        (1.7, "executed", {"node": "4"}),
        (4.2, "executing", {"node": "3"}),  # a node id seen twice (e.g. a list input) adds up
        (4.5, "execution_success", {}),
        (4.6, "executing", {"node": None}),
    ]
    times, cached = bench.node_times(events)
    assert times == pytest.approx({"3": 1.0 + 0.3, "4": 3.0})
    assert cached == ["1", "2"]


def test_an_error_ends_the_running_node(bench):
    times, _ = bench.node_times([(1.0, "executing", {"node": "7"}), (3.5, "execution_error", {"node_id": "7"})])
    assert times == pytest.approx({"7": 2.5})


def test_kinds(bench):
    assert bench.kind("I2PFaceSwap") == "pack"
    assert bench.kind("I2PFaceInpaint") == "sampling"
    assert bench.kind("KSampler") == "sampling"
    assert bench.kind("VAEDecode") == "core"


def test_a_run_of_some_workflows_keeps_the_other_sections(bench):
    old = ("# Bundled workflows, per node (cpu)\n\nCommand: `all`.\n\nConditions: shared.\n\n"
           "## fast_swap\n\nold fast\n\n## auto_prompt\n\nold auto\n\n## couple_photo\n\nold couple\n")
    new = "# Bundled workflows, per node (cpu)\n\nCommand: `--workflows fast_swap`.\n\n## fast_swap\n\nnew fast\n"
    text = bench.merged(old, new)
    head, sections = bench.sections(text)
    assert list(sections) == ["fast_swap", "auto_prompt", "couple_photo"]  # the file's order is kept
    assert "new fast" in sections["fast_swap"] and "old fast" not in text
    assert "old auto" in sections["auto_prompt"] and "old couple" in sections["couple_photo"]
    assert "Command: `all`." in head and "Conditions: shared." in head  # what the kept sections came from
    assert "Re-run of fast_swap:" in head and "--workflows fast_swap" in head
