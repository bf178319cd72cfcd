"""Map series never go down: keys evicted, deleted or missing from a read (MonotonicSeries via
MapMetric), against real kernel maps, read through the delta converter as the agent does."""

from __future__ import annotations

import struct

import pytest

from otelbpf.aggregate.cardinality import CardinalityLimiter
from otelbpf.aggregate.delta import DeltaConverter
from otelbpf.agent.program import MapMetric
from otelbpf.config.program import CounterConfig, DecoderConfig, LabelConfig
from otelbpf.labels.keys import KeyDecoder
from otelbpf.kernel.maps import BpfMap, MapType

pytestmark = pytest.mark.kernel

LABELS = (LabelConfig("key", 4, 0, (DecoderConfig("uint"),)),)
CONFIG = CounterConfig(name="events", help="", unit="1", map="m", labels=LABELS)
OVERFLOW = (("otel.metric.overflow", True),)


def put(m: BpfMap, key: int, value: int) -> None:
    m.update(struct.pack("<I", key), struct.pack("<Q", value))


class Reader:
    """A MapMetric read every interval, converted to deltas and committed, as the agent does."""

    def __init__(self, bpf_map: BpfMap, limit: int):
        self.metric = MapMetric(CONFIG, bpf_map, KeyDecoder(LABELS), 1, CardinalityLimiter(limit))
        self.delta = DeltaConverter()
        self.sent: dict = {}
        self.now = 1

    def read(self) -> dict:
        self.now += 10
        metric = self.metric.collect(self.now)
        deltas, token = self.delta.convert([metric])
        self.delta.commit(token)
        for p in deltas[0].points:
            self.sent[p.attributes] = self.sent.get(p.attributes, 0) + p.value
        return {p.attributes: p.value for p in metric.points}


def k(n: int):
    return (("key", str(n)),)


def test_deleted_and_recreated_keys_never_go_down_and_deltas_stay_exact():
    with BpfMap.create(MapType.HASH, 4, 8, 64, name="t_series") as m:
        reader = Reader(m, limit=3)  # two series of their own + the overflow series
        for key, value in {1: 10, 2: 20, 3: 30, 4: 40, 5: 50}.items():
            put(m, key, value)
        assert reader.read() == {k(1): 10, k(2): 20, OVERFLOW: 120}
        m.delete(struct.pack("<I", 1))  # an admitted key evicted
        m.delete(struct.pack("<I", 4))  # a folded key evicted
        put(m, 2, 25)
        assert reader.read() == {k(1): 10, k(2): 25, OVERFLOW: 120}
        put(m, 1, 3)  # back from zero: 3 new events
        put(m, 4, 1)
        put(m, 3, 35)
        assert reader.read() == {k(1): 13, k(2): 25, OVERFLOW: 126}
        put(m, 1, 2)  # recreated again between two reads, below its last value
        assert reader.read() == {k(1): 15, k(2): 25, OVERFLOW: 126}
    assert reader.delta.resets == 0
    assert reader.sent == {k(1): 15, k(2): 25, OVERFLOW: 126}


def test_a_key_missing_from_one_read_keeps_counting_where_it_was():
    with BpfMap.create(MapType.HASH, 4, 8, 64, name="t_partial") as m:
        reader = Reader(m, limit=10)
        put(m, 7, 100)
        assert reader.read() == {k(7): 100}
        m.delete(struct.pack("<I", 7))  # as if a read had missed it
        assert reader.read() == {k(7): 100}
        put(m, 7, 140)
        assert reader.read() == {k(7): 140}
    assert reader.delta.resets == 0 and reader.sent == {k(7): 140}


def test_an_lru_map_under_pressure_never_goes_down():
    """A real LRU hash evicting keys: every exported series and the overflow only grow."""
    with BpfMap.create(MapType.LRU_HASH, 4, 8, 16, name="t_lru") as m:
        reader = Reader(m, limit=8)
        previous: dict = {}
        for round_ in range(1, 8):
            for key in range(round_ * 8, round_ * 8 + 40):
                put(m, key % 48, round_)
            current = reader.read()
            for attrs, value in previous.items():
                assert current.get(attrs, 0) >= value, attrs
            previous = current
    assert reader.delta.resets == 0


def test_a_reloaded_program_keeps_the_totals_of_evicted_keys():
    """A reload swaps in a new MapMetric for the same pinned map (LoadedProgram.go_live): it takes
    over the running one's totals, so a key evicted before the reload does not read as a reset."""
    with BpfMap.create(MapType.HASH, 4, 8, 64, name="t_reload") as m:
        reader = Reader(m, limit=10)
        put(m, 1, 50)
        put(m, 2, 7)
        assert reader.read() == {k(1): 50, k(2): 7}
        m.delete(struct.pack("<I", 1))  # evicted while the running version reads
        assert reader.read() == {k(1): 50, k(2): 7}
        new = MapMetric(CONFIG, m, KeyDecoder(LABELS), 1, CardinalityLimiter(10))
        new.take_over(reader.metric)
        reader.metric = new
        put(m, 1, 5)  # back from zero after the reload: 5 new events
        assert reader.read() == {k(1): 55, k(2): 7}
    assert reader.delta.resets == 0 and reader.sent == {k(1): 55, k(2): 7}
