"""Helpers for the reliability tests: program dirs filtered to one child process, what the
agent logged and what the gRPC receiver got, and a child that makes known syscalls."""

from __future__ import annotations


def grpc_points(received, metric: str, **attrs) -> list:
    """Every data point of ``metric`` (sums only) whose attributes include ``attrs``, in order."""
    out = []
    for export in received:
        for rm in export.request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name != metric:
                        continue
                    for dp in m.sum.data_points:
                        have = {a.key: a.value.string_value for a in dp.attributes}
                        if all(have.get(k) == v for k, v in attrs.items()):
                            out.append(dp)
    return out


def flushes(agent, ok: bool | None = None) -> int:
    with agent._cond:
        return sum(1 for e in agent.logs if e.get("event") == "flushed"
                   and (ok is None or e.get("ok") is ok))


def wait_flushes(agent, n: int = 1, *, ok: bool | None = True, timeout: float = 30.0) -> None:
    """Wait until ``n`` more flushes (with that outcome) than now have been logged."""
    target = flushes(agent, ok) + n
    agent.wait_log(lambda _entry: flushes(agent, ok) >= target, timeout)


def no_traceback(agent) -> None:
    text = "".join(agent.raw_stderr) + "".join(agent.stdout_lines)
    assert "Traceback" not in text, text[-4000:]
