"""Python Celery's event receiver on braid's Redis: prints every event it captures as a
JSON line until it has seen a `task-succeeded` and a `task-failed`, or the limit passes.

    python events_receiver.py SECONDS
"""

import json
import sys
import threading

from celery_app import app

limit = float(sys.argv[1])
seen = set()


def on_event(event):
    print(json.dumps(event, default=str), flush=True)
    seen.add(event["type"])
    if {"task-succeeded", "task-failed"} <= seen:
        raise SystemExit(0)


timer = threading.Timer(limit, lambda: None)
with app.connection() as conn:
    recv = app.events.Receiver(conn, handlers={"*": on_event})
    print(json.dumps({"type": "ready"}), flush=True)
    try:
        recv.capture(limit=None, timeout=limit, wakeup=False)
    except SystemExit:
        pass
    except Exception as exc:  # the timeout ends capture with socket.timeout
        print(json.dumps({"type": "ended", "why": repr(exc)}), flush=True)
