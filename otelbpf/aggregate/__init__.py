"""Aggregate stage: kernel slots and stream events → exact OTLP data points.

`buckets` (histogram slot layouts), `maps` (map snapshots → metrics), `exponential` (vectorised
exponential histograms for streams), `delta` (cumulative → delta against the last exported
baseline), `cardinality` (per-metric series limit).
"""
