"""The Python side of `braid bench csp`: the same work as braid's cases, with PyCSP 0.9.

Usage (see README.md for the protocol):

    python csp.py CASE --repeats N --iterations SIZE [--quick] [--impl greenlets|parallel]

Prints one JSON object on its last line of stdout and exits 0. Each case runs on
`pycsp.greenlets` (the counterpart of braid's default cooperative scheduler); the
`pycsp.parallel` (OS threads) time of the same case is measured in a child interpreter
and reported in the note, or is the headline for the `*_threads` cases.

PyCSP 0.9.2 predates Python 3.10: it needs `collections.Callable`, which is restored
here before the import (no file is patched), and `PYCSP_HOST`, set to 127.0.0.1.
"""

import argparse
import collections
import collections.abc
import json
import os
import statistics
import subprocess
import sys
import time

collections.Callable = collections.abc.Callable
os.environ.setdefault("PYCSP_HOST", "127.0.0.1")

# The threads implementation costs ~100 us per communication: fewer iterations for it.
THREADS_ITERATIONS = 2000


def load(impl):
    try:
        if impl == "greenlets":
            import pycsp.greenlets as csp
        else:
            import pycsp.parallel as csp
    except ImportError as e:
        missing = "greenlet" if "greenlet" in str(e) else "pycsp"
        print(json.dumps({"missing": missing}))
        sys.exit(0)
    return csp


def ping_pong(csp, n):
    """Microseconds per round trip of a value between two processes on two channels."""
    out = []

    @csp.process
    def pong(cin, cout):
        for _ in range(n):
            cout(cin() + 1)

    @csp.process
    def ping(cin, cout):
        v = 0
        start = time.perf_counter()
        for _ in range(n):
            cout(v)
            v = cin() + 1
        out.append((time.perf_counter() - start) / n * 1e6)
        assert v == 2 * n, f"the value is {v}, expected {2 * n}"

    a, b = csp.Channel(), csp.Channel()
    csp.Parallel(ping(b.reader(), a.writer()), pong(a.reader(), b.writer()))
    return out[0]


def commstime(csp, n):
    """Microseconds per cycle of prefix -> delta -> successor, four communications each."""
    out = []

    @csp.process
    def prefix(cin, cout, first):
        t = first
        while True:
            cout(t)
            t = cin()

    @csp.process
    def delta(cin, cout1, cout2):
        while True:
            t = cin()
            cout1(t)
            cout2(t)

    @csp.process
    def successor(cin, cout):
        while True:
            cout(cin() + 1)

    @csp.process
    def consumer(cin):
        first = cin()
        start = time.perf_counter()
        for i in range(1, n + 1):
            v = cin()
            assert v == first + i, f"cycle {i} delivered {v}"
        out.append((time.perf_counter() - start) / n * 1e6)
        csp.poison(cin)

    a, b, c, d = csp.Channel(), csp.Channel(), csp.Channel(), csp.Channel()
    csp.Parallel(
        prefix(c.reader(), a.writer(), 0),
        delta(a.reader(), b.writer(), d.writer()),
        successor(b.reader(), c.writer()),
        consumer(d.reader()),
    )
    return out[0]


def alt_select(csp, n):
    """Microseconds per AltSelect of a server over four always-writing processes."""
    out = []

    @csp.process
    def writer(cout, i):
        while True:
            cout(i)

    @csp.process
    def server(cins):
        guards = [csp.InputGuard(cin) for cin in cins]
        counts = [0] * len(cins)
        start = time.perf_counter()
        for _ in range(n):
            _, msg = csp.AltSelect(*guards)
            counts[msg] += 1
        out.append((time.perf_counter() - start) / n * 1e6)
        assert sum(counts) == n
        for cin in cins:
            csp.poison(cin)

    channels = [csp.Channel() for _ in range(4)]
    csp.Parallel(
        *[writer(ch.writer(), i) for i, ch in enumerate(channels)],
        server([ch.reader() for ch in channels]),
    )
    return out[0]


def buffered_stream(csp, n):
    """Microseconds per value streamed through a channel buffered for 64."""
    out = []

    @csp.process
    def source(cout):
        for i in range(n):
            cout(i)
        csp.retire(cout)

    @csp.process
    def sink(cin):
        total = 0
        start = time.perf_counter()
        for _ in range(n):
            total += cin()
        out.append((time.perf_counter() - start) / n * 1e6)
        assert total == n * (n - 1) // 2, f"the sum is {total}"

    ch = csp.Channel(buffer=64)
    csp.Parallel(source(ch.writer()), sink(ch.reader()))
    return out[0]


CASES = {
    "ping_pong": ping_pong,
    "ping_pong_threads": ping_pong,
    "commstime": commstime,
    "alt_select": alt_select,
    "buffered_stream": buffered_stream,
}


def measure(impl, case, n, repeats):
    csp = load(impl)
    values = [CASES[case](csp, n) for _ in range(repeats)]
    if impl == "parallel":
        csp.shutdown()
    return statistics.median(values)


def threads_time(case, n, repeats):
    """The case on pycsp.parallel, in a child interpreter (the two cannot share one)."""
    child = subprocess.run(
        [sys.executable, __file__, case, "--impl", "parallel", "--repeats", str(repeats),
         "--iterations", str(n)],
        capture_output=True, text=True, timeout=600,
    )
    lines = child.stdout.strip().splitlines()
    if child.returncode != 0 or not lines:
        tail = (child.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"pycsp.parallel failed: {tail}")
    answer = json.loads(lines[-1])
    if "value" not in answer:
        raise RuntimeError(f"pycsp.parallel: {answer}")
    return answer["value"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--impl", choices=["greenlets", "parallel"], default=None)
    args = parser.parse_args()

    if args.impl is not None:
        # A child run for one implementation.
        print(json.dumps({"unit": "us", "value": measure(args.impl, args.case, args.iterations, args.repeats)}))
        return 0

    threads_n = min(args.iterations, THREADS_ITERATIONS)
    if args.case.endswith("_threads"):
        value = threads_time(args.case, threads_n, args.repeats)
        print(json.dumps({"unit": "us", "value": value, "note": f"pycsp.parallel (OS threads), {threads_n} iterations"}))
        return 0
    load("greenlets")  # answers {"missing": ...} when PyCSP or greenlet is not installed
    value = measure("greenlets", args.case, args.iterations, args.repeats)
    answer = {"unit": "us", "value": value}
    if args.case in ("ping_pong", "commstime"):
        try:
            threads = threads_time(args.case, threads_n, min(args.repeats, 3))
            answer["note"] = f"pycsp.greenlets; pycsp.parallel (OS threads): {threads:.1f} us"
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            answer["note"] = f"pycsp.greenlets; {e}"
    else:
        answer["note"] = "pycsp.greenlets"
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
