"""The Python side of `braid bench dmap`: the same small tasks on SCOOP and on multiprocessing.

Usage (see README.md for the protocol):

    python dmap.py CASE --repeats N --iterations SIZE [--quick]

Prints one JSON object on its last line of stdout and exits 0. The `scoop_*` cases run
this script again under `python -m scoop -n 2` (SCOOP's futures only work there) and
pass on what it prints; SCOOP's workers are started and warmed before the clock runs.
`pool_map_small_tasks` uses `multiprocessing.Pool(2)`, also warmed first.
"""

import argparse
import json
import multiprocessing
import operator
import os
import statistics
import subprocess
import sys
import time

WORKERS = 2


def square(x):
    return x * x


def sum_of_squares(n):
    return sum(x * x for x in range(n))


# --- inside SCOOP (`python -m scoop -n 2 dmap.py`, BRAID_BENCH_SCOOP_CASE="CASE REPEATS N") --


def scoop_map_small_tasks(futures, n):
    """Microseconds per task of list(futures.map(square, range(n)))."""
    start = time.perf_counter()
    squares = list(futures.map(square, range(n)))
    elapsed = time.perf_counter() - start
    assert len(squares) == n and sum(squares) == sum_of_squares(n), "wrong squares"
    return elapsed / n * 1e6


def scoop_submit_small_tasks(futures, n):
    """Microseconds per task of n futures.submit(square, i), then each .result()."""
    start = time.perf_counter()
    fs = [futures.submit(square, i) for i in range(n)]
    total = sum(f.result() for f in fs)
    elapsed = time.perf_counter() - start
    assert total == sum_of_squares(n), "a wrong sum of squares"
    return elapsed / n * 1e6


def scoop_map_reduce(futures, n):
    """Microseconds per item of futures.mapReduce(square, operator.add, range(n))."""
    start = time.perf_counter()
    total = futures.mapReduce(square, operator.add, range(n))
    elapsed = time.perf_counter() - start
    assert total == sum_of_squares(n), "a wrong sum of squares"
    return elapsed / n * 1e6


SCOOP_CASES = {
    "scoop_map_small_tasks": scoop_map_small_tasks,
    "scoop_submit_small_tasks": scoop_submit_small_tasks,
    "scoop_map_reduce": scoop_map_reduce,
}


def inside_scoop(case, repeats, n):
    from scoop import futures

    # Start and warm every worker before the clock runs.
    assert list(futures.map(square, range(WORKERS * 4)))[3] == 9
    values = [SCOOP_CASES[case](futures, n) for _ in range(repeats)]
    print(json.dumps({"unit": "us", "value": statistics.median(values)}), flush=True)


def under_scoop(case, repeats, n):
    try:
        import scoop  # noqa: F401
    except ImportError:
        return {"missing": "scoop"}
    # SCOOP parses every option on its command line, the script's included: the case
    # travels in the environment.
    command = [
        sys.executable, "-m", "scoop", "-n", str(WORKERS), "--host", "127.0.0.1", "--external-hostname", "127.0.0.1",
        os.path.abspath(__file__),
    ]
    env = dict(os.environ, BRAID_BENCH_SCOOP_CASE=f"{case} {repeats} {n}")
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"SCOOP run failed ({done.returncode}): {tail}")
    return json.loads(lines[-1])


# --- multiprocessing -------------------------------------------------------------------


def pool_map_small_tasks(n):
    """Microseconds per task of Pool(2).map(square, range(n)) with the default chunks."""
    with multiprocessing.Pool(processes=WORKERS) as pool:
        assert pool.map(square, range(WORKERS * 4), chunksize=1)[3] == 9
        start = time.perf_counter()
        squares = pool.map(square, range(n))
        elapsed = time.perf_counter() - start
    assert len(squares) == n and sum(squares) == sum_of_squares(n), "wrong squares"
    return elapsed / n * 1e6


def main():
    inside = os.environ.get("BRAID_BENCH_SCOOP_CASE")
    if inside:
        case, repeats, n = inside.split()
        inside_scoop(case, int(repeats), int(n))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("case")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=WORKERS)
    args = parser.parse_args()
    if args.case in SCOOP_CASES:
        answer = under_scoop(args.case, args.repeats, args.iterations)
    elif args.case == "pool_map_small_tasks":
        values = [pool_map_small_tasks(args.iterations) for _ in range(args.repeats)]
        answer = {"unit": "us", "value": statistics.median(values)}
    else:
        raise SystemExit(f"unknown case {args.case}")
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
