"""The Python side of `braid bench async`: the same work as braid's cases, with asyncio.

Usage (see README.md for the protocol):

    python async.py CASE --repeats N --iterations SIZE [--quick] [--workers P]

Each case is measured on asyncio's default event loop (the value braid compares with)
and, when the `uvloop` package imports, again on uvloop's loop (reported in the note).
Prints one JSON object on its last line of stdout and exits 0.
"""

import argparse
import asyncio
import json
import statistics
import sys
import time


async def noop(i):
    return i


async def gather_noop(n):
    """Microseconds per coroutine of asyncio.gather over n no-op coroutines."""
    start = time.perf_counter()
    values = await asyncio.gather(*[noop(i) for i in range(n)])
    elapsed = time.perf_counter() - start
    assert len(values) == n and sum(values) == n * (n - 1) // 2, "gather lost values"
    return elapsed / n * 1e6


async def gather_tasks_noop(n):
    """The same gather: asyncio wraps each coroutine in a Task, as braid's gather_tasks
    spawns each future."""
    return await gather_noop(n)


async def taskgroup_spawn_join(n):
    """Microseconds per task to create n no-op tasks in a TaskGroup and join them."""
    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(noop(i)) for i in range(n)]
    values = [t.result() for t in tasks]
    elapsed = time.perf_counter() - start
    assert len(values) == n and sum(values) == n * (n - 1) // 2, "the group lost values"
    return elapsed / n * 1e6


async def queue_ping_pong(n):
    """Microseconds per round trip of one item bounced between two tasks on two queues."""
    ping, pong = asyncio.Queue(), asyncio.Queue()

    async def responder():
        for _ in range(n):
            await pong.put(await ping.get() + 1)

    worker = asyncio.create_task(responder())
    start = time.perf_counter()
    v = 0
    for _ in range(n):
        await ping.put(v)
        v = await pong.get() + 1
    elapsed = time.perf_counter() - start
    await worker
    assert v == 2 * n, f"the item is {v}, expected {2 * n}"
    return elapsed / n * 1e6


async def event_wakeup(n):
    """Microseconds per round trip of two tasks ping-ponging over two asyncio Events."""
    go, back = asyncio.Event(), asyncio.Event()
    rounds = [0]

    async def responder():
        for _ in range(n):
            await go.wait()
            go.clear()
            rounds[0] += 1
            back.set()

    worker = asyncio.create_task(responder())
    wrong = None
    start = time.perf_counter()
    for i in range(n):
        go.set()
        await back.wait()
        back.clear()
        if rounds[0] != i + 1 and wrong is None:
            wrong = (i, rounds[0])
    elapsed = time.perf_counter() - start
    await worker
    assert wrong is None, f"wait returned early: {wrong}"
    return elapsed / n * 1e6


CASES = {
    "gather_noop": gather_noop,
    "gather_tasks_noop": gather_tasks_noop,
    "taskgroup_spawn_join": taskgroup_spawn_join,
    "async_queue_ping_pong": queue_ping_pong,
    "async_event_wakeup": event_wakeup,
}


def measure(loop_factory, case, iterations, repeats):
    """The median of `repeats` runs of `case`, each on a fresh event loop from the factory."""
    values = []
    for _ in range(repeats):
        loop = loop_factory()
        try:
            values.append(loop.run_until_complete(CASES[case](iterations)))
        finally:
            loop.close()
    return statistics.median(values)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not hasattr(asyncio, "TaskGroup"):
        print(json.dumps({"missing": "python>=3.11 (asyncio.TaskGroup)"}))
        return 0
    value = measure(asyncio.new_event_loop, args.case, args.iterations, args.repeats)
    answer = {"unit": "us", "value": value}
    try:
        import uvloop
    except ImportError:
        answer["note"] = "uvloop not installed: default asyncio loop only"
    else:
        fast = measure(uvloop.new_event_loop, args.case, args.iterations, args.repeats)
        answer["note"] = f"uvloop {uvloop.__version__}: {fast:.3g} us"
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
