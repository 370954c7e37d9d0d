"""The Python side of `braid bench threads`: the same work as braid's cases, with the stdlib.

Usage (see README.md for the protocol):

    python threads.py CASE --repeats N --iterations SIZE [--quick] [--workers P]

Prints one JSON object on its last line of stdout and exits 0.
"""

import argparse
import json
import multiprocessing
import queue
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def queue_ping_pong(n):
    """Microseconds per round trip of one item bounced between two threads on two queues."""
    ping, pong = queue.Queue(), queue.Queue()

    def responder():
        for _ in range(n):
            pong.put(ping.get() + 1)

    worker = threading.Thread(target=responder, name="pong")
    worker.start()
    start = time.perf_counter()
    v = 0
    for _ in range(n):
        ping.put(v)
        v = pong.get() + 1
    elapsed = time.perf_counter() - start
    worker.join()
    assert v == 2 * n, f"the item is {v}, expected {2 * n}"
    return elapsed / n * 1e6


def lock_uncontended(n):
    """Nanoseconds per acquire + release of a lock no other thread touches."""
    lock = threading.Lock()
    counter = 0
    start = time.perf_counter()
    for _ in range(n):
        with lock:
            counter += 1
    elapsed = time.perf_counter() - start
    assert counter == n, f"the counter is {counter}, expected {n}"
    return elapsed / n * 1e9


def lock_contended(n):
    """Nanoseconds per acquire + release while two threads hammer one lock, n/2 each."""
    each = (n + 1) // 2
    lock = threading.Lock()
    counter = [0]
    start_line = threading.Barrier(3)

    def hammer():
        start_line.wait()
        for _ in range(each):
            with lock:
                counter[0] += 1

    hammers = [threading.Thread(target=hammer, name=f"hammer-{i}") for i in range(2)]
    for t in hammers:
        t.start()
    start_line.wait()
    start = time.perf_counter()
    for t in hammers:
        t.join()
    elapsed = time.perf_counter() - start
    assert counter[0] == 2 * each, f"the counter is {counter[0]}, expected {2 * each}"
    return elapsed / (2 * each) * 1e9


def event_wakeup(n):
    """Microseconds per round trip of two threads ping-ponging over two Events."""
    go, back = threading.Event(), threading.Event()
    rounds = [0]

    def responder():
        for _ in range(n):
            go.wait()
            go.clear()
            rounds[0] += 1
            back.set()

    worker = threading.Thread(target=responder, name="responder")
    worker.start()
    wrong = None
    start = time.perf_counter()
    for i in range(n):
        go.set()
        back.wait()
        back.clear()
        if rounds[0] != i + 1 and wrong is None:
            wrong = (i, rounds[0])
    elapsed = time.perf_counter() - start
    worker.join()
    assert wrong is None, f"wait returned early: {wrong}"
    return elapsed / n * 1e6


def condition_wakeup(n):
    """Microseconds per round trip of two threads taking turns under one Condition."""
    turn = threading.Condition()
    count = [0]

    def responder():
        for _ in range(n):
            with turn:
                turn.wait_for(lambda: count[0] % 2 == 1)
                count[0] += 1
                turn.notify()

    worker = threading.Thread(target=responder, name="responder")
    worker.start()
    wrong = None
    start = time.perf_counter()
    for i in range(n):
        with turn:
            if count[0] != 2 * i and wrong is None:
                wrong = (i, count[0])
            count[0] += 1
            turn.notify()
            turn.wait_for(lambda: count[0] % 2 == 0)
    elapsed = time.perf_counter() - start
    worker.join()
    assert wrong is None, f"a round began out of turn: {wrong}"
    assert count[0] == 2 * n, f"the counter is {count[0]}, expected {2 * n}"
    return elapsed / n * 1e6


# Numbers are handed out in blocks of this many, round-robin over the parts (as in braid).
BLOCK = 1000


def is_prime(x):
    """Trial division by 2 and the odd numbers up to sqrt(x): braid's algorithm, step for step."""
    if x < 2:
        return False
    if x < 4:
        return True
    if x % 2 == 0:
        return False
    d = 3
    while d * d <= x:
        if x % d == 0:
            return False
        d += 2
    return True


def count_part(n, parts, k):
    """The primes below n in part k of parts: blocks k, k + parts, k + 2 parts, ..."""
    count = 0
    block = k
    while block * BLOCK < n:
        end = min((block + 1) * BLOCK, n)
        for x in range(block * BLOCK, end):
            if is_prime(x):
                count += 1
        block += parts
    return count


def cpu_scaling(n, workers, repeats):
    """Seconds to count the primes below n in p parts on p threads and on p processes."""
    variants = {"threads": {}, "processes": {}}
    counts = set()
    notes = []
    for p in range(1, workers + 1):
        args = [(n, p, k) for k in range(p)]
        with ThreadPoolExecutor(max_workers=p) as pool:
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                futures = [pool.submit(count_part, *a) for a in args]
                total = sum(f.result() for f in futures)
                times.append(time.perf_counter() - start)
                counts.add(total)
            variants["threads"][str(p)] = statistics.median(times)
    try:
        for p in range(1, workers + 1):
            args = [(n, p, k) for k in range(p)]
            with multiprocessing.Pool(processes=p) as pool:
                # Every worker process is started before the clock runs.
                pool.map(abs, range(p), chunksize=1)
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    total = sum(pool.starmap(count_part, args, chunksize=1))
                    times.append(time.perf_counter() - start)
                    counts.add(total)
                variants["processes"][str(p)] = statistics.median(times)
    except OSError as e:
        del variants["processes"]
        notes.append(f"processes: {e}")
    assert len(counts) == 1, f"the prime counts differ between runs: {sorted(counts)}"
    answer = {"unit": "s", "variants": variants, "check": counts.pop()}
    if notes:
        answer["note"] = "; ".join(notes)
    return answer


CASES = {
    "queue_ping_pong": ("us", queue_ping_pong),
    "lock_uncontended": ("ns", lock_uncontended),
    "lock_contended": ("ns", lock_contended),
    "event_wakeup": ("us", event_wakeup),
    "condition_wakeup": ("us", condition_wakeup),
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
        answer = {"unit": unit, "value": statistics.median(values)}
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
