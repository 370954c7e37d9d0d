"""The Python side of `braid bench rpc`: the same calls as braid's cases, with Pyro5 and RPyC.

Usage (see README.md for the protocol):

    python rpc.py CASE --repeats N --iterations SIZE [--quick]

Prints one JSON object on its last line of stdout and exits 0. The server runs in a child
process (a server thread in this process would share the GIL with the clients) and is
started and warmed before the clock runs, as on braid's side.
"""

import argparse
import json
import multiprocessing
import socket
import statistics
import sys
import threading
import time

CLIENTS = 16


def import_or_missing(package):
    try:
        return __import__(package)
    except ImportError:
        print(json.dumps({"missing": package}))
        sys.exit(0)


def pyro_server(ready):
    import Pyro5.api

    @Pyro5.api.expose
    @Pyro5.api.behavior(instance_mode="single")
    class Calc:
        def add(self, a, b):
            return a + b

    daemon = Pyro5.api.Daemon(host="127.0.0.1")
    uri = daemon.register(Calc, "calc")
    ready.put(str(uri))
    daemon.requestLoop()


def rpyc_server(ready):
    import rpyc
    from rpyc.utils.server import ThreadedServer

    class CalcService(rpyc.Service):
        def exposed_add(self, a, b):
            return a + b

    server = ThreadedServer(CalcService, hostname="127.0.0.1", port=0)
    ready.put(server.port)
    server.start()


def pyro_client(address):
    import Pyro5.api

    proxy = Pyro5.api.Proxy(address)
    return proxy, proxy.add


def rpyc_client(address):
    import rpyc

    conn = rpyc.connect("127.0.0.1", address)
    return conn, conn.root.add


def start(kind):
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Queue()
    target = pyro_server if kind == "pyro" else rpyc_server
    process = ctx.Process(target=target, args=(ready,), daemon=True)
    process.start()
    address = ready.get(timeout=60)
    if kind == "rpyc":
        # ThreadedServer reports its port before it listens (it listens in start()).
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", address), timeout=5).close()
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
    return process, address


def round_trip(connect, address, n):
    """Microseconds per call of add(i, 1), one after the other, on one connection."""
    keep, add = connect(address)
    for i in range(100):
        assert add(i, 1) == i + 1
    total = 0
    start = time.perf_counter()
    for i in range(n):
        total += add(i, 1)
    elapsed = time.perf_counter() - start
    assert total == n * (n - 1) // 2 + n, "a wrong sum"
    del keep
    return elapsed / n * 1e6


def clients(connect, address, n):
    """Calls per second of CLIENTS threads, each on its own connection, n calls in all."""
    per_client = n // CLIENTS
    barrier = threading.Barrier(CLIENTS + 1)
    sums = [0] * CLIENTS
    errors = []

    def client(k):
        try:
            keep, add = connect(address)
            assert add(1, 1) == 2
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            barrier.abort()
            return
        barrier.wait()
        total = 0
        for i in range(per_client):
            total += add(i, k)
        sums[k] = total
        del keep

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    assert not errors, errors
    for k in range(CLIENTS):
        expected = per_client * (per_client - 1) // 2 + per_client * k
        assert sums[k] == expected, f"client {k}: a wrong sum"
    return per_client * CLIENTS / elapsed


CASES = {
    "round_trip_pyro5": ("pyro", round_trip, "us"),
    "round_trip_rpyc": ("rpyc", round_trip, "us"),
    "clients_pyro5": ("pyro", clients, "calls/s"),
    "clients_rpyc": ("rpyc", clients, "calls/s"),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int)
    args = parser.parse_args()
    kind, measure, unit = CASES[args.case]
    import_or_missing("Pyro5" if kind == "pyro" else "rpyc")
    connect = pyro_client if kind == "pyro" else rpyc_client
    process, address = start(kind)
    try:
        values = [measure(connect, address, args.iterations) for _ in range(args.repeats)]
    finally:
        process.terminate()
        process.join(10)
    print(json.dumps({"unit": unit, "value": statistics.median(values)}))


if __name__ == "__main__":
    main()
