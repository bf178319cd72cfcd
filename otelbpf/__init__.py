"""otelbpf: eBPF maps, ring buffers and host BPF health, pushed as OpenTelemetry metrics."""

__version__ = "0.1.0"
