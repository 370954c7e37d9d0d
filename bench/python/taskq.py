"""The Python side of `braid bench taskq`: the same work as braid's cases, with Celery 5.x
on the same Redis (database 13 of $BRAID_BENCH_REDIS, default redis://127.0.0.1:6379/13,
with a key prefix of its own per run).

Usage (see README.md for the protocol):

    python taskq.py CASE --repeats N --iterations SIZE [--quick]

The worker is a Celery worker started by this script (`celery -A taskq worker`, prefork
pool, 2 processes: the default pool on the 2 cores braid's worker gets; a prefetch multiplier
of 128, as braid's worker holds 256 messages), consuming a
queue of its own. Prints one JSON object on its last line of stdout and exits 0.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

try:
    from celery import Celery
except ImportError:  # the protocol's answer for a missing package
    if __name__ == "__main__":
        print(json.dumps({"missing": "celery"}))
        sys.exit(0)
    raise

REDIS = os.environ.get("BRAID_BENCH_REDIS", "redis://127.0.0.1:6379/13")
PREFIX = os.environ.get("BRAID_BENCH_PREFIX") or f"braid-bench-py-{uuid.uuid4().hex}-"

# The amqp_ cases put the queue on RabbitMQ ($BRAID_BENCH_AMQP); main() sets
# BRAID_BENCH_TRANSPORT=amqp and starts again, so the worker it starts uses it too.
AMQP = os.environ.get("BRAID_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
ON_AMQP = os.environ.get("BRAID_BENCH_TRANSPORT") == "amqp"

app = Celery("taskq", broker=AMQP if ON_AMQP else REDIS, backend=REDIS)
app.conf.update(
    broker_transport_options={} if ON_AMQP else {"global_keyprefix": PREFIX},
    result_backend_transport_options={"global_keyprefix": PREFIX},
    result_expires=600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="tasks.noop")
def noop():
    return None


class Worker:
    """A Celery worker in a child process, consuming nothing until told to."""

    def __init__(self):
        self.name = f"bench-{uuid.uuid4().hex[:8]}@localhost"
        env = dict(os.environ, BRAID_BENCH_PREFIX=PREFIX)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "taskq", "worker", "-c", "2",
             "--pool", "prefork", "--prefetch-multiplier", "128", "-Q", f"idle-{self.name}", "-n", self.name,
             "--without-mingle", "--without-gossip", "-l", "error"],
            cwd=os.path.dirname(os.path.abspath(__file__)),
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 60
        while not app.control.ping(destination=[self.name], timeout=0.5):
            if time.time() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("the Celery worker did not start")

    def consume(self, queue):
        app.control.add_consumer(queue, destination=[self.name], reply=True)

    def stop(self):
        self.process.kill()
        self.process.wait()


def purge(queue):
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)


def send(n, worker):
    """Tasks per second that one client sends (`delay()` in a loop)."""
    queue = f"send-{uuid.uuid4().hex}"
    start = time.perf_counter()
    for _ in range(n):
        noop.apply_async(queue=queue)
    elapsed = time.perf_counter() - start
    purge(queue)
    return n / elapsed


def wait_all(results):
    """Waits for the last result, then checks that every result is stored."""
    results[-1].get(timeout=300)
    backend = app.backend
    keys = [backend.get_key_for_task(r.id) for r in results]
    while keys:
        stored = []
        for i in range(0, len(keys), 5000):
            stored.extend(backend.client.mget(keys[i:i + 5000]))
        keys = [k for k, v in zip(keys, stored) if v is None]
        if keys:
            time.sleep(0.01)


def drop_queue(queue):
    """On RabbitMQ, deletes a queue of this run once measured (Redis lists vanish when empty)."""
    if ON_AMQP:
        app.control.cancel_consumer(queue, reply=True)
        with app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)


def drain(n, worker):
    """Tasks per second a worker runs from a full queue, results stored."""
    queue = f"drain-{uuid.uuid4().hex}"
    results = [noop.apply_async(queue=queue) for _ in range(n)]
    start = time.perf_counter()
    worker.consume(queue)
    wait_all(results)
    rate = n / (time.perf_counter() - start)
    drop_queue(queue)
    return rate


def end_to_end(n, worker):
    """Tasks per second sent, run and read back, with the worker already running."""
    queue = f"e2e-{uuid.uuid4().hex}"
    worker.consume(queue)
    start = time.perf_counter()
    results = [noop.apply_async(queue=queue) for _ in range(n)]
    for r in results:
        r.get(timeout=300)
    return n / (time.perf_counter() - start)


def roundtrip(n, worker):
    """Microseconds per `delay().get()` with an idle worker."""
    queue = f"rt-{uuid.uuid4().hex}"
    worker.consume(queue)
    noop.apply_async(queue=queue).get(timeout=60)
    start = time.perf_counter()
    for _ in range(n):
        noop.apply_async(queue=queue).get(timeout=60)
    elapsed = time.perf_counter() - start
    drop_queue(queue)
    return elapsed / n * 1e6


CASES = {
    "send_noop": (send, "tasks/s"),
    "worker_noop": (drain, "tasks/s"),
    "end_to_end_noop": (end_to_end, "tasks/s"),
    "delay_get_roundtrip": (roundtrip, "us"),
    "amqp_worker_noop": (drain, "tasks/s"),
    "amqp_delay_get_roundtrip": (roundtrip, "us"),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int)
    args = parser.parse_args()
    measure, unit = CASES[args.case]
    if args.case.startswith("amqp_") and not ON_AMQP:
        env = dict(os.environ, BRAID_BENCH_TRANSPORT="amqp", BRAID_BENCH_PREFIX=PREFIX)
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    try:
        app.connection_for_write().ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001 - any connection failure means no Redis
        where = AMQP if ON_AMQP else REDIS
        print(json.dumps({"note": f"no broker at {where}: {exc}", "unit": unit}))
        return
    worker = Worker()
    try:
        values = [measure(args.iterations, worker) for _ in range(args.repeats)]
    finally:
        worker.stop()
        client = app.backend.client
        keys = list(client.scan_iter(match=f"{PREFIX}*", count=10000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i:i + 1000])
    print(json.dumps({"unit": unit, "value": statistics.median(values)}))


if __name__ == "__main__":
    main()
