"""The batch queue (Celery + Redis) against a real ``redis-server`` and real worker processes, each
bound to a fake ComfyUI speaking the real protocol (tests/fake_comfyui.py).

Workers run this checkout's CLI in child processes (tests/pack_cli.py) so that SIGKILL is real. They
use a 4 s visibility timeout: a dead worker's job is handed out again after 4-5 s. The client API
runs in this process from the loaded pack. Skipped only when ``redis-server`` is not installed
(``.ci/run`` installs it through setup.sh).
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from fake_comfyui import FakeComfyUI
from packload import pack_module
from queue_harness import RedisServer, Worker, redis_server_binary, wait_for

pytestmark = [
    pytest.mark.skipif(redis_server_binary() is None,
                       reason="redis-server is not installed (setup.sh installs it with apt-get as root; "
                              "elsewhere: apt-get install redis-server)"),
    pytest.mark.timeout(180),
]

WORKFLOW = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}, "_meta": {"title": "Reference photo"}},
    "2": {"class_type": "LoadImage", "inputs": {"image": "example.png"}, "_meta": {"title": "Face photo"}},
    "3": {"class_type": "ImageBlend", "inputs": {"image1": ["1", 0], "image2": ["2", 0], "blend_factor": 0.5,
                                                 "blend_mode": "normal"}, "_meta": {"title": "Blend"}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "i2p/queue"},
          "_meta": {"title": "Save result"}},
    "5": {"class_type": "RandomNoise", "inputs": {"noise_seed": 0}, "_meta": {"title": "Noise"}},
}


def api():
    return pack_module("cli.queue_client")


def Job(*args):
    return pack_module("cli.runner").Job(*args)


@pytest.fixture()
def redis_server(tmp_path):
    with RedisServer(tmp_path / "redis") as server:
        yield server


class Cluster:
    """Fake ComfyUI servers, one worker each; everything stopped at the end."""

    def __init__(self, broker: str, log_dir: Path):
        self.broker, self.log_dir = broker, log_dir
        self.fakes: list[FakeComfyUI] = []
        self.workers: list[Worker] = []

    def add(self, **fake_options) -> tuple[FakeComfyUI, Worker]:
        fake = FakeComfyUI(**fake_options).start()
        worker = Worker(fake.url, self.broker, self.log_dir, f"w{len(self.workers)}", visibility=4.0)
        self.fakes.append(fake)
        self.workers.append(worker)
        return fake, worker

    def start(self) -> "Cluster":
        for w in self.workers:
            w.start(wait=False)
        for w in self.workers:
            w.wait_ready()
        return self

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        for f in self.fakes:
            f.hold.set()
            f.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.log()[-4000:]}" for w in self.workers)


@pytest.fixture()
def cluster(redis_server, tmp_path):
    c = Cluster(redis_server.url, tmp_path)
    yield c
    c.stop()


def photo(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), colour).save(path)
    return path


def make_jobs(root: Path, n: int, prefix: str = "job") -> list:
    return [Job(f"{prefix}{i:02d}", photo(root / f"{prefix}{i:02d}" / "ref.jpg", (i * 5 % 256, 10, 200)),
                [photo(root / f"{prefix}{i:02d}" / "face.jpg", (10, i * 5 % 256, 90))], 1000 + i) for i in range(n)]


def wait_done(broker: str, batch: str, names: list[str], timeout: float, cluster: Cluster) -> None:
    if not api().follow(broker, batch, names, timeout=timeout, log=lambda m: None):
        states = api().status(broker, batch)
        pytest.fail(f"batch {batch} not done after {timeout} s: {states}\n{cluster.logs()}")


def check_results(results, jobs, fakes, out: Path) -> None:
    """Each job: one ok result whose image is byte for byte the one its server saved for a prompt
    that carried exactly this job's photos and seed."""
    by_job = {r.job: r for r in results}
    assert sorted(by_job) == sorted(j.name for j in jobs) and len(results) == len(jobs)
    servers = {f.url: f for f in fakes}
    for job in jobs:
        r = by_job[job.name]
        assert r.status == "ok", (job.name, r.message)
        assert len(r.outputs) == 1 and Path(r.outputs[0]).parent == out
        fake = servers[r.server]
        entry = fake.history[r.prompt_id]
        prompt = entry["prompt"][2]
        assert prompt["5"]["inputs"]["noise_seed"] == job.seed
        assert fake.uploads[prompt["1"]["inputs"]["image"]] == job.reference.read_bytes()
        assert fake.uploads[prompt["2"]["inputs"]["image"]] == job.faces[0].read_bytes()
        [item] = entry["outputs"]["4"]["images"]
        assert Path(r.outputs[0]).read_bytes() == fake.files[("output", item["subfolder"], item["filename"])]


# ------------------------------------------------------------------------------------ the audience
def test_fifty_clients_at_once_over_three_servers(cluster, redis_server, tmp_path):
    """50 clients submit one job each at the same moment: each job runs exactly once, on one of the
    three servers, and each client gets back its own image."""
    for _ in range(3):
        cluster.add()
    cluster.start()
    jobs = make_jobs(tmp_path / "photos", 50, "client")
    batches: dict[str, str] = {}
    errors: list[BaseException] = []
    go = threading.Barrier(50)

    def client(job) -> None:
        try:
            go.wait(timeout=30)
            batches[job.name] = api().submit(redis_server.url, WORKFLOW, [job])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(set(batches.values())) == 50  # one batch per client
    results = []
    out = tmp_path / "out"
    for job in jobs:
        wait_done(redis_server.url, batches[job.name], [job.name], 90, cluster)
        results += api().collect(redis_server.url, batches[job.name], out)
    check_results(results, jobs, cluster.fakes, out)
    assert sum(len(f.prompts) for f in cluster.fakes) == 50  # exactly once
    assert all(f.prompts for f in cluster.fakes)  # the three servers shared the work


# ---------------------------------------------------------------------------------- fault tests
def test_job_of_a_killed_worker_runs_again_elsewhere(cluster, redis_server, tmp_path):
    stuck, victim = cluster.add()
    cluster.add()
    stuck.hold.clear()  # the victim's first prompt sits in its first node
    cluster.start()
    jobs = make_jobs(tmp_path / "photos", 4)
    batch = api().submit(redis_server.url, WORKFLOW, jobs)
    wait_for(lambda: stuck.running, 30, "a job to start on the first server")
    [(_, prompt_id, *_)] = stuck.running
    victim.kill()  # SIGKILL mid-job
    wait_done(redis_server.url, batch, [j.name for j in jobs], 60, cluster)
    stuck.hold.set()
    results = api().collect(redis_server.url, batch, tmp_path / "out")
    healthy = cluster.fakes[1]
    assert all(r.server == healthy.url for r in results)  # the killed worker's job moved over
    check_results(results, jobs, [healthy], tmp_path / "out")
    assert len(healthy.prompts) == 4  # nothing duplicated: each job ran there once
    assert len(list((tmp_path / "out").glob("*.png"))) == 4


def test_server_that_disappears_mid_batch(cluster, redis_server, tmp_path):
    dying, _ = cluster.add(die_after=1)
    healthy, _ = cluster.add()
    cluster.start()
    jobs = make_jobs(tmp_path / "photos", 8)
    batch = api().submit(redis_server.url, WORKFLOW, jobs)
    wait_done(redis_server.url, batch, [j.name for j in jobs], 90, cluster)
    assert dying.dead
    results = api().collect(redis_server.url, batch, tmp_path / "out")
    check_results(results, jobs, [dying, healthy], tmp_path / "out")
    moved = [r for r in results if r.attempts > 1]
    assert moved and all(r.server == healthy.url for r in moved)
    assert "not answering: this worker takes no jobs" in cluster.workers[0].log()


def test_job_lost_on_every_server_fails_with_the_reason(cluster, redis_server, tmp_path):
    cluster.add(die_after=0)
    cluster.add(die_after=0)
    cluster.start()
    [job] = make_jobs(tmp_path / "photos", 1)
    batch = api().submit(redis_server.url, WORKFLOW, [job], retries=1)
    wait_done(redis_server.url, batch, [job.name], 90, cluster)
    [result] = api().collect(redis_server.url, batch, tmp_path / "out")
    assert result.status == "failed" and result.attempts == 2
    assert "is not answering" in result.message and "gave up after 2 attempt(s)" in result.message
    assert all(f.url in result.message for f in cluster.fakes)  # both servers were tried


def test_worker_takes_jobs_again_when_its_server_comes_back(cluster, redis_server, tmp_path):
    first, worker = cluster.add()
    cluster.start()
    port = int(first.url.rsplit(":", 1)[1])
    first.kill()
    wait_for(lambda: "this worker takes no jobs" in worker.log(), 30, "the worker to stop taking jobs")
    # Celery's own line, written when its consumer has really let go of the queue (the pack's line above is
    # written when the cancel is sent: a job queued in between could still be taken, which made this flaky)
    wait_for(lambda: "Canceling queue" in worker.log(), 30, "Celery to cancel the worker's consumer")
    [job] = make_jobs(tmp_path / "photos", 1)
    batch = api().submit(redis_server.url, WORKFLOW, [job])
    time.sleep(1.5)
    assert api().status(redis_server.url, batch)[job.name]["status"] == "queued"  # no server: it waits
    with FakeComfyUI(port=port) as again:
        wait_done(redis_server.url, batch, [job.name], 60, cluster)
        check_results(api().collect(redis_server.url, batch, tmp_path / "out"), [job], [again], tmp_path / "out")
    assert "answers again: taking jobs" in worker.log()


def test_redis_restart_mid_batch_loses_nothing(cluster, redis_server, tmp_path):
    cluster.add(steps=4, step_delay=0.1)
    cluster.add(steps=4, step_delay=0.1)
    cluster.start()
    jobs = make_jobs(tmp_path / "photos", 10)
    batch = api().submit(redis_server.url, WORKFLOW, jobs)
    store = pack_module("cli.queue_store").Store(redis_server.url)
    wait_for(lambda: len(store.results(batch)) >= 2, 60, "the first results")
    redis_server.restart(down_for=2.0)
    wait_done(redis_server.url, batch, [j.name for j in jobs], 120, cluster)
    results = api().collect(redis_server.url, batch, tmp_path / "out")
    check_results(results, jobs, cluster.fakes, tmp_path / "out")


def test_poison_job_fails_once_and_blocks_nothing(cluster, redis_server, tmp_path):
    cluster.add()
    cluster.add()
    cluster.start()
    poison = json.loads(json.dumps(WORKFLOW))
    poison["3"]["inputs"]["blend_factor"] = 5.0
    [bad] = make_jobs(tmp_path / "bad", 1, "poison")
    bad_batch = api().submit(redis_server.url, poison, [bad])
    jobs = make_jobs(tmp_path / "photos", 6)
    batch = api().submit(redis_server.url, WORKFLOW, jobs)
    wait_done(redis_server.url, batch, [j.name for j in jobs], 60, cluster)
    wait_done(redis_server.url, bad_batch, [bad.name], 30, cluster)
    check_results(api().collect(redis_server.url, batch, tmp_path / "out"), jobs, cluster.fakes, tmp_path / "out")
    [result] = api().collect(redis_server.url, bad_batch, tmp_path / "bad_out")
    assert result.status == "rejected" and result.attempts == 1 and result.outputs == []
    assert "node 3 'Blend' (ImageBlend):" in result.message
    assert "value_bigger_than_max: Value 5.0 bigger than max of 1.0: blend_factor" in result.message
    assert sum(len(f.rejected) for f in cluster.fakes) == 1  # ComfyUI saw it once

    # a job whose inputs expired from Redis fails with that reason instead of vanishing
    qw, store = pack_module("cli.queue_worker"), pack_module("cli.queue_store").Store(redis_server.url)
    spec = {"name": "gone", "reference": {"sha": "0" * 64, "name": "r.jpg"}, "faces": [], "seed": 1,
            "batch": "expired", "workflow": "0" * 64, "retries": 2, "attempts": 0, "tried": [], "queued_at": 0}
    store.add_job("expired", "gone", spec)
    qw.publish(qw.client_app(redis_server.url), spec)
    wait_done(redis_server.url, "expired", ["gone"], 30, cluster)
    [gone] = api().collect(redis_server.url, "expired", tmp_path / "gone")
    assert gone.status == "failed" and "has expired from Redis; submit the batch again" in gone.message


# --------------------------------------------------------------------------------- command line
def test_run_with_broker_then_status_collect_and_resume(cluster, redis_server, tmp_path, capsys):
    cluster.add()
    cluster.add()
    cluster.start()
    cli = pack_module("cli.main").main
    folder = tmp_path / "batch"
    for i in range(3):
        photo(folder / f"job{i}" / "reference.jpg", (200, i * 60, 20))
        photo(folder / f"job{i}" / "face.jpg", (20, 200, i * 60))
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(WORKFLOW))
    argv = ["run", "--workflow", str(wf), "--batch", str(folder), "--seed", "5", "--broker", redis_server.url]
    assert cli([*argv, "--out", str(tmp_path / "out")]) == 0, capsys.readouterr().err + cluster.logs()
    err = capsys.readouterr().err
    batch = err.split("batch ", 1)[1].split(":", 1)[0]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [r["job"] for r in summary] == ["job0", "job1", "job2"] and all(r["status"] == "ok" for r in summary)
    assert all(Path(r["outputs"][0]).is_file() for r in summary)

    assert cli(["status", batch, "--broker", redis_server.url]) == 0
    assert f"batch {batch}: 3 ok of 3" in capsys.readouterr().out
    assert cli(["collect", batch, "--broker", redis_server.url, "--out", str(tmp_path / "again")]) == 0
    assert sorted(p.name for p in (tmp_path / "again").glob("*.png")) == sorted(
        Path(r["outputs"][0]).name for r in summary)

    ran = sum(len(f.prompts) for f in cluster.fakes)
    assert cli([*argv, "--out", str(tmp_path / "out2")]) == 0  # the same batch again: resumed, nothing reruns
    assert sum(len(f.prompts) for f in cluster.fakes) == ran == 3
    assert batch in capsys.readouterr().err

    assert cli(["status", "no-such-batch", "--broker", redis_server.url]) == 2
    assert "no batch 'no-such-batch'" in capsys.readouterr().err


def test_clear_errors_without_redis(tmp_path, capsys):
    from queue_harness import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    cli = pack_module("cli.main").main
    assert cli(["status", "x", "--broker", url]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
