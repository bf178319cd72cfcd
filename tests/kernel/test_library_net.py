"""Library programs about the network, driven over loopback: tcp-states, tcp-retransmits,
tcp-rtt, skb-drops, udp-drops. The TCP programs are loaded with target_port set to the test's
own listening port, so other traffic on the host cannot change the counts."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.kernel.library import attached, exp_series, loaded, metrics, values
from tests.workloads import fill_accept_queue

pytestmark = pytest.mark.kernel

ESTABLISHED, SYN_SENT, SYN_RECV, CLOSE, LAST_ACK, LISTEN = 1, 2, 3, 7, 9, 10
AF_INET = 2


def bound_listener() -> socket.socket:
    """A TCP socket bound to a free loopback port, not yet listening (no state change yet)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s


def test_tcp_states_counts_each_connection_exactly(bpf_build):
    connections = 20
    server = bound_listener()
    port = server.getsockname()[1]
    with loaded(bpf_build, "tcp-states", target_port=port) as obj:
        with attached(obj):
            server.listen(connections)
            for _ in range(connections):
                client = socket.create_connection(("127.0.0.1", port))
                accepted, _ = server.accept()
                client.close()
                accepted.close()
            server.close()
        seen = values(obj.maps["tcp_transitions"], "=BBxx")
        points = metrics(bpf_build, "tcp-states", obj)["tcp.state.transitions"].points
        named = {(dict(p.attributes)["tcp.state.from"], dict(p.attributes)["tcp.state.to"]): p.value
                 for p in points}
    # The array holds every pair; only those that counted are series.
    assert len(seen) == 16 << 8
    assert sorted(p.value for p in points) == sorted(v for v in seen.values() if v)
    assert seen[(CLOSE, LISTEN)] == 1
    assert seen[(CLOSE, SYN_SENT)] == connections
    assert seen[(SYN_SENT, ESTABLISHED)] == connections
    assert named[("syn_sent", "established")] == connections
    assert seen[(LISTEN, CLOSE)] == 1
    # The accepted side: handshake done, then closed by the peer (LAST_ACK -> CLOSE).
    assert seen[(SYN_RECV, ESTABLISHED)] == connections
    assert seen[(LAST_ACK, CLOSE)] == connections


def test_tcp_retransmits_counts_the_syn_a_full_listener_dropped(bpf_build):
    server = bound_listener()
    port = server.getsockname()[1]
    with loaded(bpf_build, "tcp-retransmits", target_port=port) as obj:
        with attached(obj):
            first = fill_accept_queue(server)
            second = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            second.setblocking(False)
            start = time.monotonic()
            assert second.connect_ex(("127.0.0.1", port)) in (115, 11)  # EINPROGRESS / EAGAIN
            # The dropped SYN is sent again after the initial 1 s timeout, then after 2 s more.
            time.sleep(1.6)
            elapsed = time.monotonic() - start
            second.close()
            first.close()
            server.close()
        seen = values(obj.maps["tcp_retransmits"], "=BBxx")
        points = metrics(bpf_build, "tcp-retransmits", obj)["tcp.retransmits"].points
    assert elapsed < 2.9, "too slow to tell one retransmission from two"
    assert {k: v for k, v in seen.items() if v} == {(SYN_SENT, AF_INET): 1}
    assert [(dict(p.attributes), p.value) for p in points] == [
        ({"tcp.state": "syn_sent", "network.type": "ipv4"}, 1)]


def test_tcp_rtt_samples_loopback_round_trips(bpf_build):
    exchanges = 200
    server = bound_listener()
    port = server.getsockname()[1]
    with loaded(bpf_build, "tcp-rtt", target_port=port) as obj:
        server.listen(1)
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        with attached(obj):
            for _ in range(exchanges):
                client.sendall(b"ping")
                assert accepted.recv(4) == b"ping"
                accepted.sendall(b"pong")
                assert client.recv(4) == b"pong"
        for s in (client, accepted, server):
            s.close()
        buckets, zero, total = exp_series(values(obj.maps["tcp_rtt"], "=Hxxi"), (AF_INET,))
        (point,) = metrics(bpf_build, "tcp-rtt", obj)["tcp.srtt"].points
    samples = sum(buckets.values()) + zero
    # Each side processes every segment the other sends (data, and ACKs not piggybacked).
    assert 2 * exchanges <= samples <= 4 * exchanges + 10
    assert total / samples < 10_000  # loopback: microseconds, not milliseconds
    assert point.count == samples and point.scale <= 3


def test_skb_drops_counts_datagrams_to_a_closed_port_as_no_socket(bpf_build):
    datagrams = 300
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with loaded(bpf_build, "skb-drops") as obj:
        with attached(obj):
            for _ in range(datagrams):
                try:
                    tx.sendto(b"lost", ("127.0.0.1", closed_port))
                except ConnectionRefusedError:  # the ICMP error of an earlier datagram
                    pass
        tx.close()
        named = {dict(p.attributes)["reason"]: p.value
                 for p in metrics(bpf_build, "skb-drops", obj)["network.packet.drops"].points}
    assert datagrams <= named.get("no_socket", 0) <= datagrams + 20, named


def proc_udp_drops(port: int) -> int:
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            return int(fields[-1])
    raise AssertionError(f"port {port} not in /proc/net/udp")


def test_udp_drops_equal_the_sockets_own_drop_count(bpf_build):
    sent = 2000
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    rx.bind(("127.0.0.1", 0))
    port = rx.getsockname()[1]
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with loaded(bpf_build, "udp-drops") as obj:
        with attached(obj):
            for _ in range(sent):
                tx.sendto(b"y" * 512, ("127.0.0.1", port))
        received = 0
        rx.setblocking(False)
        while True:
            try:
                rx.recv(1024)
                received += 1
            except BlockingIOError:
                break
        kernel_drops = proc_udp_drops(port)
        seen = values(obj.maps["udp_drops"], "=HxxI")
    tx.close()
    rx.close()
    ours = sum(v for (p, _), v in seen.items() if p == port)
    assert ours > 0
    assert ours == kernel_drops == sent - received
