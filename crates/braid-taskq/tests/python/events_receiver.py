"""Python Celery's event receiver on the test's broker: prints every event it captures as
a JSON line until it has seen every type wanted (default: `task-succeeded` and
`task-failed`), or the limit passes. The app comes from the module named in
BRAID_TEST_APP (default `celery_app`, braid's Redis; `amqp_app` for RabbitMQ).

    python events_receiver.py SECONDS [TYPE ...]
"""

import importlib
import json
import os
import sys

app = importlib.import_module(os.environ.get("BRAID_TEST_APP", "celery_app")).app

limit = float(sys.argv[1])
wanted = set(sys.argv[2:]) or {"task-succeeded", "task-failed"}
seen = set()


def on_event(event):
    print(json.dumps(event, default=str), flush=True)
    seen.add(event["type"])
    if wanted <= seen:
        raise SystemExit(0)


with app.connection() as conn:
    recv = app.events.Receiver(conn, handlers={"*": on_event})
    consume_ready = recv.on_consume_ready

    def on_consume_ready(*args, **kwargs):
        # The event queue is declared, bound and consumed: nothing sent from now on is
        # missed (on RabbitMQ; Redis subscribes a little later).
        consume_ready(*args, **kwargs)
        print(json.dumps({"type": "ready"}), flush=True)

    recv.on_consume_ready = on_consume_ready
    try:
        recv.capture(limit=None, timeout=limit, wakeup=False)
    except SystemExit:
        pass
    except Exception as exc:  # the timeout ends capture with socket.timeout
        print(json.dumps({"type": "ended", "why": repr(exc)}), flush=True)
