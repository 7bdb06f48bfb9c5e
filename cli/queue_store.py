"""What the queue keeps in Redis besides Celery's own messages: the photos and workflow of each job,
the state and result of each job of a batch, and the result images.

Results travel as image bytes in Redis (not as paths on a shared disk): workers and clients then need
nothing in common but the Redis URL. Every key of a batch expires ``ttl`` seconds after its last write
(default 7 days); ``collect`` writes the images to a folder before then.

Keys (prefix ``i2p:``)::

    blob:<sha256>                  input photo / workflow JSON bytes, shared by every job that uses it
    batch:<id>:jobs                hash  job name -> job spec (JSON, what the task carries)
    batch:<id>:state               hash  job name -> "running on <server> (attempt n)" while it runs
    batch:<id>:results             hash  job name -> result record (JSON), written once (HSETNX)
    batch:<id>:file:<name>         bytes of one result image

"Written once" is what makes a job count exactly once: a job that runs twice (its worker was lost
after it stored the result, or Redis handed it out again) cannot replace or add a result.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Callable, TypeVar

PREFIX = "i2p:"
DEFAULT_TTL = 7 * 24 * 3600
T = TypeVar("T")


class QueueError(Exception):
    """The broker cannot be used (not installed, not reachable, unknown batch)."""


def queue_extra(module: str):
    """``import module`` (celery, redis), with a clear error when the ``[queue]`` extra is missing."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name not in ("celery", "kombu", "redis"):
            raise
        raise QueueError("the queue needs Celery and redis-py: pip install 'ip-to-portrait[queue]' "
                         "(or pip install -r requirements-queue.txt)") from None


def redis_client(url: str):
    """A redis-py client for the broker URL."""
    redis = queue_extra("redis")
    return redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5, health_check_interval=10)


def patient(fn: Callable[[], T], patience: float = 120.0, what: str = "Redis") -> T:
    """Run ``fn``, retrying while Redis is unreachable (a restart) for up to ``patience`` seconds."""
    import redis

    deadline = time.monotonic() + patience
    while True:
        try:
            return fn()
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            if time.monotonic() > deadline:
                raise QueueError(f"{what} is not answering: {exc}") from None
            time.sleep(0.5)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Store:
    """The queue's records of batches, on one Redis database."""

    def __init__(self, url: str, ttl: int = DEFAULT_TTL, patience: float = 120.0):
        self.url = url
        self.ttl = ttl
        self.patience = patience
        self.r = redis_client(url)

    def _do(self, fn: Callable[[], T]) -> T:
        return patient(fn, self.patience, f"Redis at {self.url}")

    def key(self, batch: str, part: str) -> str:
        return f"{PREFIX}batch:{batch}:{part}"

    def ping(self) -> None:
        try:
            self.r.ping()
        except Exception as exc:  # redis-py raises several unrelated types for a bad URL / no server
            raise QueueError(f"no Redis answers at {self.url}: {exc}") from None

    # ------------------------------------------------------------------------------------- blobs
    def put_blob(self, data: bytes) -> str:
        digest = sha256(data)
        self._do(lambda: self.r.set(PREFIX + "blob:" + digest, data, ex=self.ttl))
        return digest

    def blob(self, digest: str) -> bytes:
        data = self._do(lambda: self.r.get(PREFIX + "blob:" + digest))
        if data is None:
            raise QueueError(f"input {digest[:12]} has expired from Redis; submit the batch again")
        return data

    # -------------------------------------------------------------------------------------- jobs
    def add_job(self, batch: str, name: str, spec: dict) -> None:
        def write():
            pipe = self.r.pipeline()
            pipe.hset(self.key(batch, "jobs"), name, json.dumps(spec))
            pipe.hdel(self.key(batch, "results"), name)  # a re-run of a failed job
            pipe.hdel(self.key(batch, "state"), name)
            for part in ("jobs", "results", "state"):
                pipe.expire(self.key(batch, part), self.ttl)
            pipe.execute()
        self._do(write)

    def jobs(self, batch: str) -> dict[str, dict]:
        raw = self._do(lambda: self.r.hgetall(self.key(batch, "jobs")))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def set_state(self, batch: str, name: str, text: str | None) -> None:
        key = self.key(batch, "state")
        self._do(lambda: self.r.hdel(key, name) if text is None else self.r.hset(key, name, text))

    def states(self, batch: str) -> dict[str, str]:
        raw = self._do(lambda: self.r.hgetall(self.key(batch, "state")))
        return {k.decode(): v.decode() for k, v in raw.items()}

    # ----------------------------------------------------------------------------------- results
    def put_file(self, batch: str, name: str, data: bytes) -> None:
        self._do(lambda: self.r.set(self.key(batch, "file:" + name), data, ex=self.ttl))

    def file(self, batch: str, name: str) -> bytes | None:
        return self._do(lambda: self.r.get(self.key(batch, "file:" + name)))

    def finish(self, batch: str, name: str, record: dict) -> bool:
        """Store a job's result unless it already has one; True when this call stored it."""
        def write():
            pipe = self.r.pipeline()
            pipe.hsetnx(self.key(batch, "results"), name, json.dumps(record))
            pipe.hdel(self.key(batch, "state"), name)
            pipe.expire(self.key(batch, "results"), self.ttl)
            return bool(pipe.execute()[0])
        return self._do(write)

    def result(self, batch: str, name: str) -> dict | None:
        raw = self._do(lambda: self.r.hget(self.key(batch, "results"), name))
        return None if raw is None else json.loads(raw)

    def results(self, batch: str) -> dict[str, dict]:
        raw = self._do(lambda: self.r.hgetall(self.key(batch, "results")))
        return {k.decode(): json.loads(v) for k, v in raw.items()}


def batch_id_for(workflow_digest: str, specs: list[dict]) -> str:
    """The same jobs (same photos, workflow and seeds) give the same id: a re-run resumes."""
    text = json.dumps([workflow_digest] + [{k: s[k] for k in ("name", "reference", "faces", "seed")}
                                           for s in specs], sort_keys=True)
    return sha256(text.encode())[:16]

