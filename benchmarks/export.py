"""OTLP/HTTP exports per second: a fresh connection per export vs one kept-alive connection.

    python3 benchmarks/export.py [--exports 300] [--series 200]

Same exporter, same request, same receiver, in one run: the baseline closes the connection after
every export (a new TCP handshake, and TLS handshake for https, each time — what the urllib-based
transport did before), the other keeps it open. Receiver: VictoriaMetrics (see tests/backends.py
for how its binary is fetched) over plain HTTP and over HTTPS with a throwaway CA from openssl.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from backends import TestCertificates, VictoriaMetrics  # noqa: E402

from otelbpf.export.encode import encode  # noqa: E402
from otelbpf.export.http import OtlpHttpExporter  # noqa: E402
from otelbpf.metrics.model import (Metric, MetricBatch, MetricKind, NumberPoint,  # noqa: E402
                                   Resource)


def request(series: int):
    now = time.time_ns()
    points = tuple(NumberPoint((("syscall", f"s{i}"),), i, now, now - 10**9) for i in range(series))
    metric = Metric("bench.calls", "", "{call}", MetricKind.SUM, points)
    resource = Resource((("service.name", "otelbpf-bench"), ("host.name", platform.node())))
    return encode(resource, [MetricBatch("bench", (metric,))])


def rate(exporter: OtlpHttpExporter, body, exports: int, *, fresh: bool) -> float:
    exporter.close()
    assert exporter.send(body, 10).ok  # warm-up (and proof that the receiver accepts it)
    started = time.perf_counter()
    for _ in range(exports):
        if fresh:
            exporter.close()  # the next send opens a new connection
        result = exporter.send(body, 10)
        if not result.ok:
            raise SystemExit(f"export failed: {result.message}")
    return exports / (time.perf_counter() - started)


def measure(name: str, exporter: OtlpHttpExporter, body, exports: int) -> dict[str, float]:
    try:
        fresh = rate(exporter, body, exports, fresh=True)
        kept = rate(exporter, body, exports, fresh=False)
    finally:
        exporter.close()
    print(f"{name}: fresh connection {fresh:8.1f} exports/s, kept alive {kept:8.1f} exports/s, "
          f"ratio {kept / fresh:.2f}x")
    return {"fresh_exports_per_s": round(fresh, 1), "kept_alive_exports_per_s": round(kept, 1),
            "ratio": round(kept / fresh, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exports", type=int, default=300)
    parser.add_argument("--series", type=int, default=200)
    args = parser.parse_args()
    body = request(args.series)
    results: dict[str, object] = {"exports": args.exports, "series": args.series,
                                  "request_bytes": body.ByteSize(),
                                  "loadavg_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as directory:
        certificates = TestCertificates.create(Path(directory))
        for name, tls in (("http", None), ("https", certificates)):
            vm = VictoriaMetrics(tls=tls).start()
            try:
                exporter = OtlpHttpExporter(vm.otlp_http_endpoint,
                                            certificate=certificates.ca_cert if tls else None)
                results[f"victoria_metrics_{name}"] = measure(f"VictoriaMetrics {name}", exporter,
                                                              body, args.exports)
            finally:
                vm.close()
    results["loadavg_end"] = os.getloadavg()[0]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
