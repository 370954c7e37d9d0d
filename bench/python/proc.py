"""The Python side of `braid bench proc`: the same work as braid's cases, with multiprocessing.

Usage (see README.md for the protocol):

    python proc.py CASE --repeats N --iterations SIZE [--quick] [--workers P]

Prints one JSON object on its last line of stdout and exits 0. Pools have two worker
processes and are started and warmed before the clock runs, as on braid's side.
"""

import argparse
import json
import multiprocessing
import statistics
import sys
import time

# The prime count of the threads suite, so both suites time the same work.
from threads import count_part

POOL = 2


def square(x):
    return x * x


def nothing():
    pass


def warm_pool():
    pool = multiprocessing.Pool(processes=POOL)
    assert pool.map(square, range(POOL * 4), chunksize=1)[3] == 9
    return pool


def check_squares(squares, n):
    assert len(squares) == n, f"{len(squares)} results, expected {n}"
    assert all(s == x * x for x, s in enumerate(squares)), "a wrong square"


def pool_map_default(n):
    """Microseconds per item of Pool.map(square, range(n)) with the default chunks."""
    with warm_pool() as pool:
        start = time.perf_counter()
        squares = pool.map(square, range(n))
        elapsed = time.perf_counter() - start
    check_squares(squares, n)
    return elapsed / n * 1e6


def pool_map_chunksize1(n):
    """Microseconds per item of Pool.map(square, range(n), chunksize=1)."""
    with warm_pool() as pool:
        start = time.perf_counter()
        squares = pool.map(square, range(n), chunksize=1)
        elapsed = time.perf_counter() - start
    check_squares(squares, n)
    return elapsed / n * 1e6


def apply_async_round_trip(n):
    """Microseconds per apply_async(square, (i,)).get(), one after the other."""
    with warm_pool() as pool:
        total = 0
        start = time.perf_counter()
        for i in range(n):
            total += pool.apply_async(square, (i,)).get()
        elapsed = time.perf_counter() - start
    assert total == sum(i * i for i in range(n)), "a wrong sum of squares"
    return elapsed / n * 1e6


def pipe_echo(conn):
    # A sentinel ends it: with fork, the child holds a copy of the parent's end too, so
    # the end of the stream would never come.
    while (v := conn.recv()) is not None:
        conn.send(v + 1)


def pipe_round_trip(n):
    """Microseconds per round trip of a number over a Pipe to a child and back."""
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.Process(target=pipe_echo, args=(theirs,))
    child.start()
    theirs.close()
    ours.send(0)
    v = ours.recv()
    start = time.perf_counter()
    for _ in range(n):
        ours.send(v)
        v = ours.recv() + 1
    elapsed = time.perf_counter() - start
    ours.send(None)
    child.join()
    assert v == 2 * n + 1, f"the item is {v}, expected {2 * n + 1}"
    return elapsed / n * 1e6


def queue_echo(ping, pong, n):
    for _ in range(n):
        pong.put(ping.get() + 1)


def queue_round_trip(n):
    """Microseconds per round trip of a number over two Queues to a child and back."""
    ping, pong = multiprocessing.Queue(), multiprocessing.Queue()
    child = multiprocessing.Process(target=queue_echo, args=(ping, pong, n + 1))
    child.start()
    ping.put(0)
    v = pong.get()
    start = time.perf_counter()
    for _ in range(n):
        ping.put(v)
        v = pong.get() + 1
    elapsed = time.perf_counter() - start
    child.join()
    assert v == 2 * n + 1, f"the item is {v}, expected {2 * n + 1}"
    return elapsed / n * 1e6


def manager_dict_op(n):
    """Microseconds per operation on a Manager's dict: d[k] = v and d[k], alternating."""
    with multiprocessing.Manager() as manager:
        d = manager.dict()
        d[0] = 0
        half = (n + 1) // 2
        total = 0
        start = time.perf_counter()
        for i in range(half):
            d[i % 100] = i
            total += d[i % 100]
        elapsed = time.perf_counter() - start
    assert total == sum(range(half)), "a wrong sum read back"
    return elapsed / (2 * half) * 1e6


def process_start(n):
    """Milliseconds to start a process running an empty function and join it."""
    start = time.perf_counter()
    for _ in range(n):
        p = multiprocessing.Process(target=nothing)
        p.start()
        p.join()
        assert p.exitcode == 0, f"exit code {p.exitcode}"
    return (time.perf_counter() - start) / n * 1e3


def cpu_scaling(n, workers, repeats):
    """Seconds to count the primes below n in p parts on a Pool of p processes."""
    variants = {"processes": {}}
    counts = set()
    for p in range(1, workers + 1):
        args = [(n, p, k) for k in range(p)]
        with multiprocessing.Pool(processes=p) as pool:
            # Every worker process is started (and has counted once) before the clock runs.
            counts.add(sum(pool.starmap(count_part, args, chunksize=1)))
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                total = sum(pool.starmap(count_part, args, chunksize=1))
                times.append(time.perf_counter() - start)
                counts.add(total)
            variants["processes"][str(p)] = statistics.median(times)
    assert len(counts) == 1, f"the prime counts differ between runs: {sorted(counts)}"
    return {"unit": "s", "variants": variants, "check": counts.pop()}


CASES = {
    "pool_map_default": ("us", pool_map_default),
    "pool_map_chunksize1": ("us", pool_map_chunksize1),
    "apply_async_round_trip": ("us", apply_async_round_trip),
    "pipe_round_trip": ("us", pipe_round_trip),
    "queue_round_trip": ("us", queue_round_trip),
    "manager_dict_op": ("us", manager_dict_op),
    "process_start": ("ms", process_start),
}
SCALING = {"cpu_scaling": cpu_scaling}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=sorted([*CASES, *SCALING]))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.case in SCALING:
        answer = SCALING[args.case](args.iterations, args.workers, args.repeats)
    else:
        unit, measure = CASES[args.case]
        values = [measure(args.iterations) for _ in range(args.repeats)]
        answer = {"unit": unit, "value": statistics.median(values), "note": f"start method {multiprocessing.get_start_method()}"}
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
