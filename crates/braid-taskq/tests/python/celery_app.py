"""A Celery app for braid's interop tests: the same Redis database and key prefix as the
test (from the environment), and Python tasks under the names the tests use."""

import os

from celery import Celery

BROKER = os.environ["BRAID_TEST_REDIS"]  # redis://127.0.0.1:6379/11
PREFIX = os.environ["BRAID_TEST_PREFIX"]  # unique per test run, ends with "-"

app = Celery("celery_app", broker=BROKER, backend=BROKER)
app.conf.update(
    broker_transport_options={"global_keyprefix": PREFIX},
    result_backend_transport_options={"global_keyprefix": PREFIX},
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="py.add")
def add(x, y):
    return x + y


@app.task(name="py.mul")
def mul(x, y):
    return x * y


@app.task(name="py.xsum")
def xsum(numbers):
    return sum(numbers)


@app.task(name="py.fail")
def fail(message):
    raise ValueError(message)


@app.task(name="py.retry_once", bind=True, max_retries=3)
def retry_once(self, value):
    if self.request.retries < 1:
        raise self.retry(countdown=0.2)
    return [value, self.request.retries]
