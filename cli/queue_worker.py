"""``python -m ip_to_portrait worker``: a Celery worker bound to one ComfyUI server.

One worker per ComfyUI server (per GPU); any number of workers on any number of machines take jobs
from one Redis queue. Each worker runs one job at a time (solo pool, prefetch 1) and acknowledges it
only when the result is stored (late ack), so a job whose worker dies goes back to the queue.

- Worker lost (killed, machine gone): Redis hands its unacknowledged job out again once it has not been
  refreshed for ``--visibility-timeout`` seconds. A live worker refreshes its running job's entry
  every quarter of that time, so a long job is never handed out twice while its worker lives.
- ComfyUI server lost: the worker stops taking jobs (it cancels its own consumer), puts the job back in
  the queue for another worker (up to the job's ``retries``, then the job fails with the reason), and
  takes jobs again when its server answers.
- A job that fails on its own (ComfyUI rejects the workflow, a node raises) fails once, with ComfyUI's
  message in its result; it is not retried and blocks nothing.

The job itself runs through :func:`runner.run_job`, the same code as ``run`` without a broker.
"""
from __future__ import annotations

import json
import logging
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

from .comfy_client import ComfyClient
from .queue_store import DEFAULT_TTL, QueueError, Store, queue_extra
from .runner import FAILED, LOST, Job, run_job, safe_name

QUEUE = "i2p"
TASK = "i2p.run_job"
DEFAULT_VISIBILITY = 60.0
log = logging.getLogger("ip_to_portrait.worker")


_apps: dict[tuple[str, float], object] = {}
_apps_lock = threading.Lock()


def client_app(broker: str):
    """One Celery app per broker for the submitting side, shared by all threads (a web server calls
    ``submit`` from many): Celery's first import is not safe to run in several threads at once."""
    with _apps_lock:
        key = (broker, DEFAULT_VISIBILITY)
        if key not in _apps:
            _apps[key] = make_app(broker)
        return _apps[key]


def make_app(broker: str, visibility_timeout: float = DEFAULT_VISIBILITY):
    """The Celery app of both sides: Redis as broker and result backend, late ack, prefetch 1."""
    Celery = queue_extra("celery").Celery
    app = Celery("ip_to_portrait", broker=broker, backend=broker, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE, task_serializer="json", result_serializer="json", accept_content=["json"],
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        result_expires=DEFAULT_TTL, broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None, worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_transport_options={
            "visibility_timeout": visibility_timeout,
            # look for jobs of lost workers often enough that they come back within ~1.25 timeouts
            "unacked_restore_interval": max(1.0, visibility_timeout / 4), "unacked_restore_throttle": 1,
        },
    )
    return app


def publish(app, spec: dict, task_id: str | None = None) -> str:
    """Queue one job spec; returns its task id."""
    task_id = task_id or uuid.uuid4().hex
    app.send_task(TASK, args=[spec], queue=QUEUE, task_id=task_id)
    return task_id


class ServerWatch:
    """Keeps the worker's consumer in step with its ComfyUI server: no server, no jobs taken."""

    def __init__(self, app, client: ComfyClient, every: float = 2.0):
        self.app, self.client, self.every = app, client, every
        self.hostname = ""
        self.consuming = True
        self.lock = threading.Lock()

    def start(self, hostname: str) -> None:
        self.hostname = hostname
        threading.Thread(target=self._loop, name="i2p-server-watch", daemon=True).start()

    def _set(self, consume: bool) -> None:
        with self.lock:
            if consume == self.consuming or not self.hostname:
                return
            self.consuming = consume
        if consume:
            log.warning("ComfyUI at %s answers again: taking jobs", self.client.url)
            self.app.control.add_consumer(QUEUE, destination=[self.hostname], reply=False)
        else:
            log.warning("ComfyUI at %s is not answering: this worker takes no jobs until it does", self.client.url)
            self.app.control.cancel_consumer(QUEUE, destination=[self.hostname], reply=False)

    def down(self) -> None:
        self._set(False)

    def _loop(self) -> None:
        while True:
            try:
                self._set(self.client.alive(timeout=3))
            except Exception as exc:  # Redis away for a moment: the next round tries again
                log.warning("server watch: %s", exc)
            time.sleep(self.every)


class Heartbeat:
    """While a job runs, keep its Redis 'unacked' entry fresh so that only a dead worker's job is
    handed out again (kombu's Redis transport restores entries older than the visibility timeout)."""

    def __init__(self, store: Store, delivery_tag: str | None, every: float, index_key: str = "unacked_index"):
        self.store, self.tag, self.every, self.key = store, delivery_tag, every, index_key
        self.stop = threading.Event()

    def __enter__(self) -> "Heartbeat":
        if self.tag:
            threading.Thread(target=self._loop, name="i2p-heartbeat", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            try:
                self.store.r.zadd(self.key, {self.tag: time.time()}, xx=True)
            except Exception as exc:  # Redis restarting: the next beat tries again
                log.warning("heartbeat: %s", exc)


def execute(task, spec: dict, client: ComfyClient, store: Store, watch: ServerWatch, visibility: float) -> dict:
    """Run one queued job on this worker's server and store its result (once)."""
    batch, name = spec["batch"], spec["name"]
    done = store.result(batch, name)
    if done is not None:  # handed out again after it finished: nothing to do
        return done
    attempt = spec.get("attempts", 0) + 1
    started = time.time()
    store.set_state(batch, name, f"running on {client.url} (attempt {attempt})")
    tag = (task.request.properties or {}).get("delivery_tag")
    with tempfile.TemporaryDirectory(prefix="i2p-job-") as tmp:
        inputs = Path(tmp) / "in"
        inputs.mkdir()

        def local(item: dict, index: int) -> Path:
            folder = inputs / str(index)  # own folder: two photos may share a file name
            folder.mkdir()
            path = folder / safe_name(item["name"])
            path.write_bytes(store.blob(item["sha"]))
            return path

        job = Job(name, local(spec["reference"], 0), [local(f, i + 1) for i, f in enumerate(spec["faces"])],
                  spec.get("seed"))
        workflow = json.loads(store.blob(spec["workflow"]))
        submitted: list[str] = []
        with Heartbeat(store, tag, max(1.0, visibility / 4)):
            result = run_job(client, workflow, job, Path(tmp) / "out", progress=False,
                             log=lambda m: log.info("%s", m), on_submitted=submitted.append)
        if result.status == LOST and not submitted:  # never reached the server: not an attempt
            watch.down()
            store.set_state(batch, name, None)
            publish(task.app, spec)
            return {"job": name, "status": "requeued", "message": result.message}
        spec = {**spec, "attempts": attempt, "tried": [*spec.get("tried", []), client.url]}
        if result.status == LOST:
            watch.down()
            if spec["attempts"] <= spec.get("retries", 2):
                log.warning("[%s] %s; back to the queue (%d/%d)", name, result.message, spec["attempts"],
                            spec.get("retries", 2))
                store.set_state(batch, name, f"queued again after {client.url} was lost")
                publish(task.app, spec)
                return {"job": name, "status": "requeued", "message": result.message}
            result.status = FAILED
            result.message = (f"{result.message} (gave up after {spec['attempts']} attempt(s) on "
                              + ", ".join(spec["tried"]) + ")")
        names = []
        for path in map(Path, result.outputs):
            store.put_file(batch, path.name, path.read_bytes())
            names.append(path.name)
    record = {**result.to_json(), "outputs": names, "attempts": spec["attempts"], "worker": task.request.hostname,
              "queued_at": spec.get("queued_at"), "started_at": started, "finished_at": time.time()}
    if not store.finish(batch, name, record):
        log.warning("[%s] already had a result; this run's result is dropped", name)
        return store.result(batch, name) or record
    log.info("[%s] %s on %s: %s", name, result.status, client.url, result.message.splitlines()[0] if result.message else "")
    return record


def build_worker(server: str, broker: str, name: str | None = None, visibility: float = DEFAULT_VISIBILITY,
                 loglevel: str = "INFO"):
    """A Celery worker (not yet started) bound to one ComfyUI server."""
    from celery.signals import worker_ready

    app = make_app(broker, visibility)
    client = ComfyClient(server)
    store = Store(broker, patience=3600)  # Redis away: wait for it rather than drop the job
    watch = ServerWatch(app, client)

    @app.task(bind=True, name=TASK)
    def run_queued_job(self, spec: dict) -> dict:
        try:
            return execute(self, spec, client, store, watch, visibility)
        except Exception as exc:  # anything unforeseen still ends the job with a result the client sees
            log.exception("[%s] worker error", spec.get("name"))
            record = {"job": spec.get("name", "?"), "status": FAILED, "server": client.url, "outputs": [],
                      "message": f"worker {self.request.hostname} failed: {type(exc).__name__}: {exc}",
                      "attempts": spec.get("attempts", 0) + 1, "queued_at": spec.get("queued_at")}
            store.finish(spec["batch"], spec["name"], record)
            return record

    hostname = name or f"i2p-{safe_name(client.url.split('://', 1)[-1])}@{socket.gethostname()}"
    worker_ready.connect(lambda sender=None, **kw: watch.start(hostname), weak=False)
    return app.Worker(hostname=hostname, pool="solo", concurrency=1, queues=[QUEUE], loglevel=loglevel,
                      without_gossip=True, without_mingle=True, without_heartbeat=True)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "worker", help="take queued jobs from Redis and run them on one ComfyUI server",
        description="A Celery worker bound to one ComfyUI server: start one per server (per GPU), on any "
                    "machine that reaches both the server and Redis. Needs the [queue] extra.")
    p.add_argument("--server", required=True, help="the ComfyUI URL this worker sends its jobs to")
    p.add_argument("--broker", required=True, help="Redis URL, e.g. redis://HOST:6379/0")
    p.add_argument("--name", help="worker name (default i2p-<server>@<host>)")
    p.add_argument("--visibility-timeout", type=float, default=DEFAULT_VISIBILITY,
                   help="seconds after which the job of a worker that died goes back to the queue "
                        f"(default {DEFAULT_VISIBILITY:g}; use the same value on every worker)")
    p.add_argument("--loglevel", default="INFO", help="Celery log level (default INFO)")
    p.set_defaults(func=main)


def main(args) -> int:
    try:
        Store(args.broker).ping()
        worker = build_worker(args.server, args.broker, args.name, args.visibility_timeout, args.loglevel)
    except QueueError as exc:
        print(f"error: {exc}", flush=True)
        return 2
    worker.start()
    return int(worker.exitcode or 0)
