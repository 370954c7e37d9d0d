"""A Celery app for braid's RabbitMQ interop tests: RabbitMQ as the broker (from the
environment), results in Redis database 4 under the test's key prefix, or over rpc://
when BRAID_TEST_BACKEND=rpc, and Python tasks under the names the tests use."""

import os

from celery import Celery

BROKER = os.environ["BRAID_TEST_AMQP"]  # amqp://guest:guest@127.0.0.1:5672//
REDIS = os.environ["BRAID_TEST_REDIS"]  # redis://127.0.0.1:6379/4
PREFIX = os.environ["BRAID_TEST_PREFIX"]  # unique per test run, ends with "-"
BACKEND = "rpc://" if os.environ.get("BRAID_TEST_BACKEND") == "rpc" else REDIS

app = Celery("amqp_app", broker=BROKER, backend=BACKEND)
app.conf.update(
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


@app.task(name="py.fail")
def fail(message):
    raise ValueError(message)


@app.task(name="py.retry_once", bind=True, max_retries=3)
def retry_once(self, value):
    if self.request.retries < 1:
        raise self.retry(countdown=1.2)
    return [value, self.request.retries]
