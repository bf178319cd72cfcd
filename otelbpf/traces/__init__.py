"""Traces: spans that BPF programs describe in ring buffer records, exported over OTLP."""
