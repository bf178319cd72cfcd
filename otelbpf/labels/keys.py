"""Raw map keys and stream record label fields → label values, through each label's decoder chain.

One rule for both: a stream's label fields, concatenated, are decoded as a key whose labels have
the fields' sizes and no padding (``streams.aggregate`` builds such a ``KeyDecoder``).

The same keys come back every interval, and some decoders are costly (kallsyms lookups, cgroup
walks), so decoded label sets are cached per raw key in a bounded LRU. Keys whose chain drops
the series are cached too (as ``None``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

from otelbpf import decoders
from otelbpf.config.program import LabelConfig, key_extent, label_slices

# Chains with decoders whose answer can change (interface names, cgroup paths, devices) have
# their cached values dropped this often, so a renamed or newly created object shows up.
DEFAULT_REFRESH_SECONDS = 60.0


class LabelCache:
    """A bounded LRU of raw bytes → decoded value; ``maxsize = 0`` disables caching.

    With ``refresh_seconds``, the whole cache is dropped that often; ``generation`` counts the
    drops, so holders of values derived from the cache know when to derive them again. Not
    thread-safe: each reader owns its decoders.
    """

    def __init__(self, maxsize: int, refresh_seconds: float | None = None):
        self.maxsize = maxsize
        self.refresh_seconds = refresh_seconds
        self.entries: OrderedDict[bytes, object] = OrderedDict()
        self._cleared = time.monotonic()
        self.generation = 0
        self.on_clear = None  # called after each timed drop (the decoders' own refresh)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: bytes, default: object) -> object:
        if self.refresh_seconds is not None:
            self.expire()
        value = self.entries.get(key, default)
        if value is not default:
            self.entries.move_to_end(key)
        return value

    def expire(self) -> None:
        now = time.monotonic()
        if now - self._cleared >= self.refresh_seconds:  # type: ignore[operator]
            self.entries.clear()
            self._cleared = now
            self.generation += 1
            if self.on_clear is not None:
                self.on_clear()

    def put(self, key: bytes, value: object) -> None:
        if self.maxsize <= 0:
            return
        self.entries[key] = value
        if len(self.entries) > self.maxsize:
            self.entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()


_MISSING = object()


class KeyDecoder:
    """Decodes map keys laid out as the config's labels (``label_slices``).

    ``decode(key: bytes)`` returns one string per label, or None when a decoder dropped the
    series or the key is shorter than ``key_size``. Only the first ``key_size`` bytes are read,
    so a histogram's series labels can be decoded from a whole key
    (``KeyDecoder(cfg.series_labels)``), though passing ``key[:key_size]`` keeps one cache entry
    per series instead of one per bucket. ``maps``: the program's maps by name, for decoders
    that read one of them (``lookup``).
    """

    def __init__(self, labels: Sequence[LabelConfig], cache_size: int = 100_000,
                 refresh_seconds: float = DEFAULT_REFRESH_SECONDS, maps=None):
        self.labels = tuple(labels)
        self.names = tuple(label.name for label in self.labels)
        self.key_size = key_extent(self.labels)
        self._slices = label_slices(self.labels)
        self._chains = tuple(decoders.build_chain(label.decoders) for label in self.labels)
        for chain in self._chains:
            chain.bind(maps)  # the program's maps, for decoders that read one (lookup)
        stable = all(chain.stable for chain in self._chains)
        self.cache = LabelCache(cache_size, None if stable else refresh_seconds)
        self.cache.on_clear = self._refresh_chains

    def _refresh_chains(self) -> None:
        for chain in self._chains:
            chain.refresh()

    def decode(self, key: bytes) -> tuple[str, ...] | None:
        cache = self.cache
        if cache.refresh_seconds is not None:
            cache.expire()
        entries = cache.entries
        values = entries.get(key, _MISSING)
        if values is not _MISSING:
            entries.move_to_end(key)
            return values  # type: ignore[return-value]
        values = self._decode_uncached(key)
        cache.put(key, values)
        return values

    def _decode_uncached(self, key: bytes) -> tuple[str, ...] | None:
        if len(key) < self.key_size:
            return None
        values = []
        for part, chain in zip(self._slices, self._chains):
            value = chain(key[part])
            if value is None:
                return None
            values.append(decoders.label_value(value))
        return tuple(values)
