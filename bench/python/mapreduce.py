"""The Python side of `braid bench mapreduce`: word count with multiprocessing + Counter.

Usage (see README.md for the protocol):

    python mapreduce.py CASE --repeats N --iterations SIZE_MB [--quick]

The corpus is the one braid's side generated (and reused) under the workspace's
target/bench-data/mapreduce-corpus-<SIZE>mb/. Two worker processes each count whole
files with `Counter(text.split())` (Python's own whitespace rule), the parent merges
the counters and writes `word<TAB>count` lines, as braid does. Both cases (`wordcount`,
`wordcount_spill`) do the same work here: Python has no memory budget to respect.
Prints one JSON object on its last line: the median time, the total word count as
`check`, and the peak RSS of the parent and of the largest worker in the note.
"""

import argparse
import collections
import json
import multiprocessing
import os
import resource
import statistics
import sys
import time
from pathlib import Path

WORKERS = 2


def corpus_dir(mb):
    here = Path(__file__).resolve().parent
    return here.parent.parent / "target" / "bench-data" / f"mapreduce-corpus-{mb}mb"


def count_file(path):
    with open(path, encoding="utf-8") as f:
        return collections.Counter(f.read().split())


def wordcount(files, out_path):
    total = collections.Counter()
    with multiprocessing.Pool(WORKERS) as pool:
        for counts in pool.imap_unordered(count_file, files):
            total.update(counts)
    with open(out_path, "w", encoding="utf-8") as out:
        for word, n in total.items():
            out.write(f"{word}\t{n}\n")
    return sum(total.values())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("case")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int)
    args = parser.parse_args()
    if args.case not in ("wordcount", "wordcount_spill"):
        print(f"unknown case {args.case}", file=sys.stderr)
        sys.exit(2)
    directory = corpus_dir(args.iterations)
    files = sorted(str(p) for p in directory.glob("*.txt"))
    if not files:
        print(f"no corpus in {directory}: braid's side generates it", file=sys.stderr)
        sys.exit(1)
    out_path = directory.parent / f"mapreduce-python-out-{os.getpid()}.tsv"
    times = []
    words = None
    try:
        for _ in range(args.repeats):
            start = time.perf_counter()
            words = wordcount(files, out_path)
            times.append(time.perf_counter() - start)
    finally:
        if out_path.exists():
            out_path.unlink()
    parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "unit": "s",
                "value": statistics.median(times),
                "check": words,
                "note": f"python peak RSS {parent:.0f} MiB (parent), {child:.0f} MiB (largest worker)",
            }
        )
    )


if __name__ == "__main__":
    main()
