#!/usr/bin/env python3
"""Checks that the ceiling exchanges the bytes of the conversation it stands
for: at each point, one session of a few messages through a counting relay,
the ping-pong (both flavours) against the reference pair, which is Postfix's
pair for Postfix's conversation and our pair at a point with ESMTP options
(`--pipelining --chunking`, which only our pair speaks). Bytes per session,
each way, must agree within --slack bytes per message (a Message-Id's
numbers and, with -r, recipient numbers can differ in length).

    python3 benches/lab/wirecheck.py                        # standard points
    python3 benches/lab/wirecheck.py --points "-s 1 -d --pipelining --chunking"

Only bytes are compared, not how they were cut into writes. The transport
(TCP or unix) and -D do not change the bytes, so every check runs over TCP.
"""

import argparse
import os
import socket
import sys
import threading
from dataclasses import replace

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import impls  # noqa: E402
import points as pts  # noqa: E402
import procs  # noqa: E402
from measure import Lab, wait_ready  # noqa: E402
from procs import Child  # noqa: E402


class Relay:
    """Accepts on a loopback port, connects each client to the server, and
    counts the bytes of every session in each direction."""

    def __init__(self, server_port):
        self.server_port = server_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.sessions = []  # [client->server bytes, server->client bytes]
        self.threads = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.server_port))
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            counts = [0, 0]
            with self.lock:
                self.sessions.append(counts)
            done = threading.Barrier(2, action=lambda c=client, s=server: (c.close(), s.close()))
            for src, dst, i in ((client, server, 0), (server, client, 1)):
                t = threading.Thread(target=self._pump, args=(src, dst, counts, i, done), daemon=True)
                t.start()
                with self.lock:
                    self.threads.append(t)

    @staticmethod
    def _pump(src, dst, counts, i, done):
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                counts[i] += len(data)
                dst.sendall(data)
        except OSError:
            pass  # a reset (smtp-source closes with SO_LINGER 0) ends this way
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            done.wait(timeout=10)
        except threading.BrokenBarrierError:
            src.close()
            dst.close()

    def finish(self):
        self.sock.close()
        with self.lock:
            threads = list(self.threads)
        for t in threads:
            t.join(10)
        return [tuple(c) for c in self.sessions]


def exchange(lab, point, impl, messages):
    """Per-session byte counts of `impl` as source and sink at `point`."""
    endpoint = impls.Endpoint.fresh("tcp", lab.dir, "wire")
    tag = lab.tag(impl.name)
    server = Child(impl.sink_argv(point, endpoint, None), lab.path(tag + "-server.log"), measured=False)
    try:
        wait_ready(endpoint, server)
        relay = Relay(endpoint.port)
        # wait_ready's probe connection went to the server, not the relay.
        via = impls.Endpoint("tcp", port=relay.port)
        client = Child(impl.source_argv(point, messages, via), lab.path(tag + "-client.log"), measured=False)
        if not client.wait(60) or client.exit_code != 0:
            client.stop()
            raise RuntimeError(f"{impl.name} client failed: {client.log_tail()}")
        return relay.finish()
    finally:
        server.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", nargs="+", metavar="NAME", help='points by name, e.g. "-s 10 -d"')
    ap.add_argument("--messages", type=int, default=3, help="messages in the one session (default 3)")
    ap.add_argument("--slack", type=int, default=2, help="bytes per message allowed to differ (default 2)")
    args = ap.parse_args()
    procs.install_cleanup()

    import run as lab_run

    build_args = argparse.Namespace(no_build=False)
    target_dir, pingpong, why_not = lab_run.build(build_args)
    if why_not:
        raise SystemExit(why_not)
    postfix = impls.postfix()
    ours = impls.ours(target_dir)
    ceilings = [impls.ceiling(pingpong, f) for f in ("threads", "tokio")]
    pool = pts.full_matrix() + pts.STANDARD
    chosen = pts.select(args.points, pool) if args.points else pts.STANDARD

    lab = Lab()
    bad = 0
    try:
        seen = set()
        for point in chosen:
            # One session over TCP; -D does not change the bytes.
            point = replace(point, sessions=1, transport="tcp", dump=False)
            if point in seen:
                continue
            seen.add(point)
            reference = ours if point.esmtp else postfix
            want = exchange(lab, point, reference, args.messages)
            for ceiling in ceilings:
                got = exchange(lab, point, ceiling, args.messages)
                ok = len(got) == len(want) and all(
                    abs(g - w) <= args.slack * args.messages for gs, ws in zip(got, want)
                    for g, w in zip(gs, ws))
                bad += not ok
                print(f"{'ok ' if ok else 'BAD'} {point.name:40} {ceiling.name:16} "
                      f"{reference.name} pair: {want}  ceiling: {got}  (client->server, server->client "
                      f"bytes per session, -m {args.messages})", flush=True)
    finally:
        procs.kill_all()
        lab.close()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
