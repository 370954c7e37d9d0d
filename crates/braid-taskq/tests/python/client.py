"""Python Celery as a client of braid workers: sends calls, chains, groups and a chord to
the braid queue given, reads the results with `.get()`, and prints them as one JSON line.

    python client.py QUEUE
"""

import json
import sys

from celery import chain, chord, group, signature

from celery_app import app

queue = sys.argv[1]
timeout = 20


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
out["retry"] = app.send_task("tasks.flaky", args=(7,), queue=queue).get(timeout=timeout)
out["countdown"] = app.send_task(
    "tasks.add", args=(1, 1), queue=queue, countdown=0.5
).get(timeout=timeout)
out["chain"] = chain(sig("tasks.add", 1, 2), sig("tasks.add", 10), sig("tasks.mul", 2)).apply_async().get(
    timeout=timeout
)
out["group"] = group(sig("tasks.add", i, i) for i in range(5)).apply_async().get(timeout=timeout)
out["chord"] = chord(
    [sig("tasks.add", i, 1) for i in range(10)], sig("tasks.xsum")
)().get(timeout=timeout)
out["map"] = app.send_task(
    "celery.map", args=(sig("tasks.double"), [1, 2, 3]), queue=queue
).get(timeout=timeout)
out["revoked"] = None
doomed = app.send_task("tasks.add", args=(1, 1), queue=queue, countdown=1.5)
doomed.revoke()
try:
    doomed.get(timeout=timeout)
except Exception as exc:
    out["revoked"] = [type(exc).__name__, doomed.state]
replies = app.control.inspect(timeout=1.0).ping() or {}
out["ping"] = sorted(replies.values(), key=str)
print(json.dumps(out))
