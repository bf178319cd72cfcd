"""Rules kept in one place: a second copy drifts (a new map type known to one module only)."""

from __future__ import annotations

import ast
from pathlib import Path

from otelbpf.kernel.maps import MapType

PACKAGE = Path(__file__).resolve().parents[2] / "otelbpf"


def _int_constants(node) -> bool:
    elts = node.elts if isinstance(node, ast.Tuple) else [node]
    return all(isinstance(e, ast.Constant) and isinstance(e.value, int) for e in elts)


def test_map_type_numbers_are_defined_only_by_maptype():
    names = set(MapType.__members__) | {f"BPF_MAP_TYPE_{n}" for n in MapType.__members__}
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "kernel" / "maps.py":
            continue
        tree = ast.parse(path.read_text())
        # Members of another kernel enum (enum bpf_link_type's STRUCT_OPS) are not map types.
        other_enums = {id(stmt) for cls in ast.walk(tree) if isinstance(cls, ast.ClassDef)
                       and any(getattr(b, "id", getattr(b, "attr", "")).endswith("Enum") for b in cls.bases)
                       for stmt in cls.body}
        for node in ast.walk(tree):
            if id(node) in other_enums:
                continue
            if not isinstance(node, ast.Assign) or not _int_constants(node.value):
                continue
            for target in node.targets:
                targets = target.elts if isinstance(target, ast.Tuple) else [target]
                found += [f"{path.relative_to(PACKAGE)}:{node.lineno} {t.id}" for t in targets
                          if isinstance(t, ast.Name) and t.id in names]
    assert found == [], "use otelbpf.kernel.maps.MapType instead of: " + ", ".join(found)
