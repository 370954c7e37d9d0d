"""Python Celery as a client of braid workers over RabbitMQ: calls, kwargs, a failure, a
retry, a countdown, chain, group and chord on the braid queue given, read with `.get()`,
then remote control of the braid worker WORKER (inspect active, reserved, stats,
registered; control revoke, rate_limit, pool_grow), printed as one JSON line. With
BRAID_TEST_BACKEND=rpc only the calls that rpc:// supports.

    python amqp_client.py QUEUE WORKER
"""

import json
import os
import sys
import time

from celery import chain, chord, group, signature

from amqp_app import app

queue = sys.argv[1]
timeout = 30
rpc = os.environ.get("BRAID_TEST_BACKEND") == "rpc"


def sig(name, *args, **options):
    return signature(name, args=args, app=app).set(queue=queue, **options)


out = {}
out["add"] = app.send_task("tasks.add", args=(2, 3), queue=queue).get(timeout=timeout)
out["kwargs"] = app.send_task(
    "tasks.add", args=(40,), kwargs={"y": 2}, queue=queue
).get(timeout=timeout)
try:
    app.send_task("tasks.fail", args=("boom",), queue=queue).get(timeout=timeout)
    out["fail"] = "no exception"
except Exception as exc:  # the braid error type, recreated by Celery
    out["fail"] = [type(exc).__name__, str(exc)]
out["countdown"] = app.send_task(
    "tasks.add", args=(1, 1), queue=queue, countdown=1.5
).get(timeout=timeout)
if not rpc:
    out["retry"] = app.send_task("tasks.flaky", args=(7,), queue=queue).get(timeout=timeout)
    out["chain"] = chain(
        sig("tasks.add", 1, 2), sig("tasks.add", 10), sig("tasks.mul", 2)
    ).apply_async().get(timeout=timeout)
    out["group"] = group(sig("tasks.add", i, i) for i in range(5)).apply_async().get(
        timeout=timeout
    )
    out["chord"] = chord(
        [sig("tasks.add", i, 1) for i in range(10)], sig("tasks.xsum")
    )().get(timeout=timeout)
replies = app.control.inspect(timeout=1.5).ping() or {}
out["ping"] = sorted(replies.values(), key=str)

# Remote control of the braid worker: replies in the shapes Celery's inspect expects.
worker = sys.argv[2]
control = {"destination": [worker], "reply": True, "timeout": 3.0}
insp = app.control.inspect(destination=[worker], timeout=3.0)
slow = app.send_task("tasks.sleep", args=(8_000,), queue=queue)
deadline = time.monotonic() + timeout
while True:
    active = insp.active() or {}
    if any(t["id"] == slow.id for t in active.get(worker, [])):
        break
    if time.monotonic() > deadline:
        break
out["slow_id"] = slow.id
out["active"] = active
out["reserved"] = insp.reserved()
out["stats"] = insp.stats()
out["registered"] = insp.registered()
out["rate_limit"] = app.control.rate_limit("tasks.add", "50/s", **control)
out["pool_grow"] = app.control.pool_grow(2, **control)
out["stats_after"] = insp.stats()
out["revoke"] = app.control.revoke(slow.id, terminate=True, **control)
try:
    slow.get(timeout=timeout)
    out["terminated"] = "no exception"
except Exception as exc:  # TaskRevokedError
    out["terminated"] = [type(exc).__name__, slow.state]
print(json.dumps(out))
