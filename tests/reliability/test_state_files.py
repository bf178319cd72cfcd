"""What the agent persists in state_dir reads back as it was written (no kernel needed)."""

from __future__ import annotations

import json

from otelbpf.agent.state import DELTA_BASELINE_FILE, AgentState
from otelbpf.aggregate.delta import DeltaConverter
from otelbpf.metrics.model import (
    ExponentialHistogramPoint,
    HistogramPoint,
    Metric,
    MetricKind,
    NumberPoint,
)

ATTRS = (("syscall", "getpid"), ("cpu", 3), ("ok", True), ("ratio", 0.5))


def metrics(scale: int) -> list[Metric]:
    return [
        Metric("c", "", "1", MetricKind.SUM, (NumberPoint(ATTRS, 7, 2000, 1000),)),
        Metric("h", "", "us", MetricKind.HISTOGRAM, (HistogramPoint(
            ATTRS, 1000, 2000, 3, 6.5, (1.0, 2.0), (1, 1, 1), None, None),)),
        Metric("e", "", "us", MetricKind.EXPONENTIAL_HISTOGRAM, (ExponentialHistogramPoint(
            ATTRS, 1000, 2000, 4, float("inf"), scale, 1, -2, (1, 0, 2), 0, (), 0.0, None, 9.0),)),
    ]


def test_delta_baseline_round_trip(tmp_path):
    converter = DeltaConverter()
    _, token = converter.convert(metrics(2))
    converter.commit(token)
    AgentState(None, tmp_path).save_delta_baselines({"otelbpf/x": converter.baseline()})
    json.loads((tmp_path / DELTA_BASELINE_FILE).read_text())  # strict JSON readers too

    restored = AgentState(None, tmp_path).load_delta_baselines()
    assert restored == {"otelbpf/x": converter.baseline()}
    again = DeltaConverter()
    again.restore(restored["otelbpf/x"])
    deltas, _ = again.convert(metrics(2))
    assert [m.points[0].count if m.kind is not MetricKind.SUM else m.points[0].value
            for m in deltas] == [0, 0, 0]
    assert all(m.points[0].start_time_ns == 2000 for m in deltas)


def test_unreadable_delta_baseline_is_ignored(tmp_path):
    (tmp_path / DELTA_BASELINE_FILE).write_text("{not json")
    assert AgentState(None, tmp_path).load_delta_baselines() == {}
    assert AgentState(None, None).load_delta_baselines() == {}


def test_dropped_delta_baseline_is_gone(tmp_path):
    state = AgentState(None, tmp_path)
    state.save_delta_baselines({"otelbpf/x": {}})
    assert (tmp_path / DELTA_BASELINE_FILE).exists()
    state.drop_delta_baselines()
    state.drop_delta_baselines()  # nothing left: still fine
    assert state.load_delta_baselines() == {}


def test_pin_plan_says_which_pinned_maps_must_start_fresh(tmp_path):
    """Saved start, layout and parameters decide; nothing is unlinked by planning."""
    pins, state_dir = tmp_path / "pins", tmp_path / "state"
    state = AgentState(pins, state_dir)
    paths, fresh = state.pin_plan("p", {"a": "L1", "b": "L1", "c": "L1"}, "P1", others=["ring"])
    assert paths == {n: pins / "p" / n for n in ("a", "b", "c", "ring")} and fresh == {}
    for name in ("a", "b", "c"):
        state.map_start("p", name, "created", "L1", "P1", 1000)
        paths[name].write_text("")  # stands in for the pin
    paths["ring"].write_text("")
    again = AgentState(pins, state_dir)  # a restart reads the saved start times
    assert again.pin_plan("p", {"a": "L1", "b": "L1", "c": "L1"}, "P1", ["ring"])[1] == {}
    assert again.map_start("p", "a", "reused", "L1", "P1", 2000).start_ns == 1000
    _, fresh = again.pin_plan("p", {"a": "L2", "b": "L1", "c": "L1", "d": "L1"}, "P2", ["ring"])
    assert fresh == {"a": "metric layout changed (labels or buckets)", "b": "parameters changed",
                     "c": "parameters changed"}  # "d" has no pin yet: nothing to replace
    (state_dir / "start_times.json").unlink()
    _, fresh = AgentState(pins, state_dir).pin_plan("p", {"a": "L1"}, "P1")
    assert fresh == {"a": "pinned map without a saved start time"}
    assert all(p.exists() for p in paths.values())
