"""KeyDecoder / FieldDecoder: slicing keys by size + padding, chains, and the bounded cache."""

from __future__ import annotations

import struct
from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st

from otelbpf.config.program import DecoderConfig, LabelConfig, key_extent, label_slices
from otelbpf.labels.keys import KeyDecoder, LabelCache


def dec(name: str, **options) -> DecoderConfig:
    return DecoderConfig(name, MappingProxyType(options))


COMM_AND_SYSCALL = (
    LabelConfig("comm", 16, 0, (dec("string"),)),
    LabelConfig("syscall", 4, 4, (dec("uint"), dec("syscall", arch="x86_64"))),
)


def key(comm: bytes, nr: int) -> bytes:
    return struct.pack("<16sIxxxx", comm, nr)


def test_slices_by_size_and_padding():
    decoder = KeyDecoder(COMM_AND_SYSCALL)
    assert decoder.names == ("comm", "syscall")
    assert decoder.key_size == 24
    assert label_slices(COMM_AND_SYSCALL) == (slice(0, 16), slice(16, 20))
    assert decoder.decode(key(b"bash", 59)) == ("bash", "execve")


def test_two_labels_read_the_same_bytes_at_an_offset():
    """An IRQ number as a number and through another decoder; later labels follow the last one."""
    labels = (
        LabelConfig("irq", 4, 0, (dec("uint"),)),
        LabelConfig("as_hex", 4, 0, (dec("hex"),), offset=0),
        LabelConfig("cpu", 2, 2, (dec("uint"),)),
    )
    decoder = KeyDecoder(labels)
    assert label_slices(labels) == (slice(0, 4), slice(0, 4), slice(4, 6))
    assert decoder.key_size == key_extent(labels) == 8
    assert decoder.decode(struct.pack("<IHxx", 29, 3)) == ("29", "1d000000", "3")


def test_key_extent_is_the_furthest_byte_any_label_reads():
    late_first = (LabelConfig("b", 4, 4, (dec("uint"),), offset=8), LabelConfig("a", 4, 0, (dec("uint"),), offset=0))
    assert key_extent(late_first) == 16
    assert key_extent(()) == 0
    assert key_extent(COMM_AND_SYSCALL) == 24


def test_padding_bytes_are_ignored():
    decoder = KeyDecoder(COMM_AND_SYSCALL)
    assert decoder.decode(key(b"bash", 0)[:20] + b"\xff" * 4) == ("bash", "read")


def test_dropped_series_and_short_keys_are_none():
    labels = (LabelConfig("op", 1, 0, (dec("uint"), dec("static_map", static_map={"1": "read"}))),)
    decoder = KeyDecoder(labels)
    assert decoder.decode(b"\x01") == ("read",)
    assert decoder.decode(b"\x02") is None
    assert decoder.decode(b"") is None


def test_invalid_utf8_is_replaced():
    decoder = KeyDecoder((LabelConfig("comm", 4, 0, (dec("string"),)),))
    assert decoder.decode(b"a\xffb\0") == ("a\ufffdb",)


def test_cache_is_bounded_lru():
    decoder = KeyDecoder(COMM_AND_SYSCALL, cache_size=2)
    a, b, c = key(b"a", 0), key(b"b", 1), key(b"c", 2)
    decoder.decode(a)
    decoder.decode(b)
    decoder.decode(a)  # a is now the most recent
    decoder.decode(c)  # evicts b
    assert list(decoder.cache.entries) == [a, c]
    decoder.decode(a)
    assert list(decoder.cache.entries) == [c, a]


def test_cache_disabled():
    decoder = KeyDecoder(COMM_AND_SYSCALL, cache_size=0)
    assert decoder.decode(key(b"x", 1)) == ("x", "write")
    assert len(decoder.cache) == 0


def test_unstable_decoders_refresh(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("otelbpf.labels.keys.time.monotonic", lambda: clock[0])
    decoder = KeyDecoder((LabelConfig("dev", 8, 0, (dec("ifname"),)),), refresh_seconds=60)
    stable = KeyDecoder(COMM_AND_SYSCALL)
    assert stable.cache.refresh_seconds is None
    decoder.decode((1).to_bytes(8, "little"))
    assert len(decoder.cache) == 1
    clock[0] += 61
    decoder.decode((2).to_bytes(8, "little"))
    assert len(decoder.cache) == 1  # cleared, then the new key stored


def test_no_labels_is_one_series():
    assert KeyDecoder(()).decode(b"\0\0\0\0") == ()


def test_histogram_series_labels_from_whole_key():
    labels = (LabelConfig("cpu", 4, 0, (dec("uint"),)), LabelConfig("bucket", 4, 0, (dec("uint"),)))
    decoder = KeyDecoder(labels[:-1])
    assert decoder.decode(struct.pack("<II", 3, 17)) == ("3",)


def test_unstable_chains_refresh_with_their_decoders_caches(tmp_path, monkeypatch):
    """A device number given to another disk shows its new name once the label cache refreshes:
    the refresh reaches the majorminor decoder's own name cache too."""
    from otelbpf.decoders.majorminor import MajorMinorDecoder

    (tmp_path / "8:16").mkdir()
    uevent = tmp_path / "8:16" / "uevent"
    uevent.write_text("DEVNAME=sdb\n")
    monkeypatch.setattr(MajorMinorDecoder, "root", tmp_path)
    decoder = KeyDecoder((LabelConfig("device", 4, 0, (dec("majorminor"),)),), refresh_seconds=3600)
    raw = struct.pack("<I", (8 << 20) | 16)
    assert decoder.decode(raw) == ("sdb",)
    uevent.write_text("DEVNAME=sdc\n")
    assert decoder.decode(raw) == ("sdb",)  # cached until the refresh
    generation = decoder.cache.generation
    decoder.cache._cleared -= 3600
    assert decoder.decode(raw) == ("sdc",)
    assert decoder.cache.generation == generation + 1


def test_label_cache_get_default():
    cache = LabelCache(1)
    sentinel = object()
    assert cache.get(b"x", sentinel) is sentinel
    cache.put(b"x", None)
    assert cache.get(b"x", sentinel) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_key_decodes_or_drops(raw):
    result = KeyDecoder(COMM_AND_SYSCALL).decode(raw)
    assert result is None or (len(result) == 2 and all(isinstance(v, str) for v in result))
