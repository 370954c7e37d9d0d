"""Python Celery's remote control against braid workers: inspect ping, stats,
active_queues, registered, and control rate_limit; prints the replies as one JSON line.

    python remote_control.py WORKER_NAME
"""

import json
import sys

from celery_app import app

name = sys.argv[1]
insp = app.control.inspect(destination=[name], timeout=3.0)
out = {
    "ping": insp.ping(),
    "stats": insp.stats(),
    "active_queues": insp.active_queues(),
    "registered": insp.registered(),
    "scheduled": insp.scheduled(),
    "rate_limit": app.control.rate_limit(
        "tasks.add", "5/s", destination=[name], reply=True, timeout=3.0
    ),
}
print(json.dumps(out, default=str))
