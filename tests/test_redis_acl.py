"""The Redis users shipped in deploy/redis/users.acl, on a real redis-server started with that file:
each role can do its part of a job and nothing it has no business with."""

import pytest
import redis
from media import make_video, probe
from redis_fixtures import ROOT, RedisServer, Workers
from test_redis import KEYS, LEFT_HALF, distributed, embedded, same_video, wait_for

USERS = ROOT / "deploy" / "redis" / "users.acl"


@pytest.fixture
def acl_server(tmp_path):
    server = RedisServer(tmp_path, password="change-me-admin", aclfile=USERS, user="admin").start()
    yield server
    server.stop()


def denied(call) -> bool:
    try:
        call()
    except redis.exceptions.NoPermissionError:
        return True
    return False


def test_worker_and_producer_users_complete_a_job_and_nothing_more(tmp_path, acl_server, run_cli):
    worker_url = acl_server.url_for("worker", "change-me-worker")
    producer_url = acl_server.url_for("producer", "change-me-producer")
    pool = Workers(worker_url)
    try:
        worker = pool.start("--claim-idle", "1")  # --jobs 0: frames only
        source = make_video(tmp_path / "in.mp4", frames=9)
        assert distributed(source, tmp_path / "out.mp4", producer_url, job="acl").frames == 9
        same_video(probe(tmp_path / "out.mp4"), embedded(tmp_path, source))
        assert worker.poll() is None
    finally:
        pool.stop_all()
    code, out, err = run_cli("status", "--redis", acl_server.url, "--json")  # the admin user
    assert code == 0 and '"acl"' in out, err

    # a worker that also runs submitted jobs, and a job submitted by the producer user
    pool = Workers(acl_server.url_for("runner", "change-me-runner"))
    try:
        worker = pool.start("--allow-input", tmp_path, "--allow-output", tmp_path, jobs=1)
        code, out, err = run_cli(
            "submit", source, "-o", tmp_path / "queued.mp4", "--model", LEFT_HALF, "--redis", producer_url
        )
        assert code == 0, err
        job = out.strip()
        wait_for(lambda: acl_server.client().hget(KEYS.job(job), "state") == b"done", what="the submitted job done")
        assert probe(tmp_path / "queued.mp4")["frames"] == 9
        assert worker.poll() is None
    finally:
        pool.stop_all()

    as_worker = redis.Redis.from_url(worker_url)
    stream = KEYS.work(LEFT_HALF)
    assert as_worker.hget(KEYS.job("acl"), "state") == b"done"  # may read a job's spec and state
    assert denied(lambda: as_worker.hset(KEYS.job("acl"), "state", "running"))  # never write a job record
    assert denied(lambda: as_worker.hgetall(KEYS.job("acl")))
    assert denied(lambda: as_worker.xadd(stream, {"v": "1"}))  # never queue frames
    assert denied(lambda: as_worker.xread({KEYS.results("acl"): "0-0"}))  # never read results
    assert denied(lambda: as_worker.xadd(KEYS.submitted, {"job": "x"}))  # never submit jobs
    assert denied(lambda: as_worker.keys("*"))
    assert denied(lambda: as_worker.get("elsewhere"))
    assert denied(lambda: as_worker.flushall())

    as_producer = redis.Redis.from_url(producer_url)
    assert denied(lambda: as_producer.xreadgroup("workers", "thief", {stream: ">"}))  # never take frames
    assert denied(lambda: as_producer.xack(stream, "workers", "0-1"))
    assert denied(lambda: as_producer.xadd(KEYS.results("acl"), {"v": "1"}))  # never forge results
    assert denied(lambda: as_producer.hset(KEYS.worker("w"), "model", "x"))
    assert denied(lambda: as_producer.get("elsewhere"))
    assert denied(lambda: as_producer.config_get("*"))

    as_admin = acl_server.client()
    assert denied(lambda: as_admin.flushall()) and denied(lambda: as_admin.config_set("save", "1 1"))
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(acl_server.url_for()).ping()  # the default user is off
