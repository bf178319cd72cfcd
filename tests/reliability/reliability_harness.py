"""Helpers for the reliability tests: what the agent logged (flushes, tracebacks)."""

from __future__ import annotations


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
