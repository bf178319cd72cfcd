"""Host-wide BPF health: how full every map is and what every program costs, whoever loaded them.

Two builtin metric sources, on by default and independent of otelbpf's own programs:
``MapPressure`` (``bpf.map.*``, ``bpf.ringbuf.*``) and ``ProgramStats`` (``bpf.program.*``).
``health_features()`` tells ``otelbpf check`` which kernel facilities they can use.
"""

from otelbpf.health.fallbacks import health_features
from otelbpf.health.map_pressure import MapPressure
from otelbpf.health.program_stats import ProgramStats

__all__ = ["MapPressure", "ProgramStats", "health_features"]
