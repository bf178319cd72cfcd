"""Tests of host-wide BPF health (otelbpf.health)."""
