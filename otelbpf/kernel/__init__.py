"""Package kernel binds the system libbpf (libbpf.so.1) through ctypes, one module per kernel concept.

``object`` opens, loads and attaches BPF objects; ``maps`` reads and writes maps (batched snapshots
as numpy arrays); ``links`` are attached programs; ``btf`` locates load-time parameters; ``info``
answers bpf(2) queries about every program and map on the host; ``features`` probes what this
kernel supports; ``perf`` opens perf events; ``libbpf`` holds the raw prototypes.
"""

from otelbpf.kernel.features import KernelFeatures, probe
from otelbpf.kernel.links import BpfLink
from otelbpf.kernel.maps import BpfMap, MapSnapshot, MapType
from otelbpf.kernel.object import BpfObject, BpfProgram

__all__ = ["BpfObject", "BpfProgram", "BpfMap", "MapSnapshot", "MapType", "BpfLink", "KernelFeatures", "probe"]
