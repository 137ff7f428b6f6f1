"""Hostile entries in Redis (real redis-server, real worker processes): each is counted and
dead-lettered with its reason; the worker and the job runner stay alive and serve the next job."""

import json
from fractions import Fraction

import cv2
import numpy as np
from media import make_video
from test_redis import KEYS, LEFT_HALF, distributed, wait_for

from streamer.distributed.jobs import JobSpec
from streamer.distributed.messages import Message, encode
from streamer.effects import EffectConfig
from streamer.frames import Frame
from streamer.job import ProcessConfig
from streamer.models import ModelConfig


def frame_fields(job="ghost", codec="raw"):
    return encode(Message(job, Frame(0, 0, Fraction(1, 30), np.zeros((4, 4, 3), np.uint8))), codec)


def good_spec(**changes) -> dict:
    """A job record's spec as a producer writes it, as JSON data to spoil."""
    job = ProcessConfig(input="in.mp4", output="out.mp4", model=ModelConfig(name=LEFT_HALF), **changes)
    return json.loads(JobSpec.of(job).to_json())


def rejected(client) -> int:
    return int(client.hget(KEYS.stats, "rejected") or 0)


def failure(client, job) -> str:
    """What workers told the job's producer when they gave up on it ("" when nothing)."""
    return "".join(entry[b"failed"].decode() for _, entry in client.xrange(KEYS.results(job)) if b"failed" in entry)


def test_poison_messages_and_records_are_dead_lettered(tmp_path, redis_server, workers):
    client = redis_server.client()
    worker = workers.start(jobs=1)
    stream = KEYS.work(LEFT_HALF)
    wait_for(lambda: client.exists(stream) and client.exists(KEYS.submitted), what="the worker's groups")
    # a detection record nested 100 000 deep (json.loads would recurse until it blows up)
    client.xadd(stream, {**frame_fields(), b"detections": b"[" * 100_000})
    # a 1 kB PNG that declares 9000×9000 pixels: refused from its header, never decoded
    huge = cv2.imencode(".png", np.zeros((9000, 9000, 3), np.uint8))[1].tobytes()
    client.xadd(stream, {**frame_fields(codec="png"), b"data": huge})
    # one that declares 20000×20000, past the image library's own bomb limit (which raises, not warns)
    bomb = cv2.imencode(".png", np.zeros((20000, 20000, 1), np.uint8))[1].tobytes()
    client.xadd(stream, {**frame_fields(codec="png"), b"data": bomb})
    # a job whose frames are to come back in a codec nobody has
    codec = good_spec()
    codec["job"]["frame_codec"] = "bmp"
    client.hset(KEYS.job("bmp"), mapping={"state": "running", "spec": json.dumps(codec)})
    client.xadd(stream, frame_fields(job="bmp"))
    # a job whose record's spec is not JSON: its frame is dead-lettered, the job failed
    client.hset(KEYS.job("broken"), mapping={"state": "running", "spec": "{not json"})
    client.xadd(stream, frame_fields(job="broken"))
    # a job whose spec names an effect nobody has: the job fails, the worker goes on
    spec = good_spec(effect=EffectConfig(name="sparkles"))
    client.hset(KEYS.job("sparkles"), mapping={"state": "running", "spec": json.dumps(spec)})
    client.xadd(stream, frame_fields(job="sparkles"))
    # a submitted job entry without its spec, and one that is not even text
    client.xadd(KEYS.submitted, {"job": "nospec", "input": "in.mp4", "output": "out.mp4"})
    client.xadd(KEYS.submitted, {"job": b"\xff\xfe", "spec": b"\x80"})
    wait_for(lambda: rejected(client) >= 7, what="7 rejections")
    wait_for(lambda: failure(client, "sparkles"), what="the sparkles job failed")
    reasons = [entry[b"reason"].decode() for _, entry in client.xrange(KEYS.dead)]
    assert any("nested 100000 deep" in reason for reason in reasons), reasons
    assert any("declares 9000x9000" in reason for reason in reasons), reasons
    assert any("DecompressionBombError" in reason for reason in reasons), reasons
    assert "--frame-codec bmp" in failure(client, "bmp")
    assert any("malformed spec" in reason for reason in reasons), reasons
    assert sum("malformed job entry" in reason for reason in reasons) == 2, reasons
    assert "malformed spec" in failure(client, "broken")  # told to its producer, which records it
    assert "sparkles" in failure(client, "sparkles")
    assert client.hget(KEYS.job("broken"), "state") == b"running"  # workers never write job records
    assert client.xlen(stream) == 0 and client.xlen(KEYS.submitted) == 0
    assert worker.poll() is None
    source = make_video(tmp_path / "in.mp4", frames=8)
    assert distributed(source, tmp_path / "out.mp4", redis_server.url).frames == 8
    assert worker.poll() is None


def test_every_kind_of_bad_record_is_counted_and_dead_lettered(tmp_path, redis_server, workers):
    client = redis_server.client()
    worker = workers.start(jobs=1)
    stream = KEYS.work(LEFT_HALF)
    wait_for(lambda: client.exists(stream) and client.exists(KEYS.submitted), what="the worker's groups")
    good = good_spec()
    records = {
        "unknownkey": json.dumps({**good, "bogus": 1}),  # a key JobSpec does not have
        "listspec": "[1, 2]",  # JSON, but not an object
        "effectstr": json.dumps({**good, "job": {**good["job"], "effect": "splash"}}),  # effect not an object
        "deepspec": "[" * 100_000,  # nested past the parser's recursion limit
    }
    for job, spec in records.items():
        client.hset(KEYS.job(job), mapping={"state": "running", "spec": spec})
        client.xadd(stream, frame_fields(job=job))
    client.hset(KEYS.job("nospec"), mapping={"state": "running"})  # a running job without a spec
    client.xadd(stream, frame_fields(job="nospec"))
    entry = {"job": "j", "spec": json.dumps(good)}

    def spoiled(**fields):
        return json.dumps({**good, "job": {**good["job"], **fields}})

    client.xadd(KEYS.submitted, {**entry, "spec": json.dumps({**good, "bogus": 1})})
    client.xadd(KEYS.submitted, {**entry, "spec": spoiled(overwrite="maybe")})
    client.xadd(KEYS.submitted, {**entry, "spec": spoiled(model={**good["job"]["model"], "batch_size": "many"})})
    client.xadd(KEYS.submitted, {**entry, "spec": spoiled(effect={"name": "splash", "color": 7})})
    wait_for(lambda: rejected(client) >= 9, what="9 rejections")
    reasons = [entry[b"reason"].decode() for _, entry in client.xrange(KEYS.dead)]
    for job in records:
        assert "malformed spec" in failure(client, job), job
    assert "without a spec" in failure(client, "nospec")
    assert sum("malformed job entry" in reason for reason in reasons) == 4, reasons
    assert client.xlen(stream) == 0 and client.xlen(KEYS.submitted) == 0
    assert worker.poll() is None
    source = make_video(tmp_path / "in.mp4", frames=8)
    assert distributed(source, tmp_path / "out.mp4", redis_server.url).frames == 8
    assert worker.poll() is None


def test_worker_rejoins_after_redis_lost_its_data(tmp_path, redis_server, workers):
    """Redis restarted empty (no persistence): the worker makes its group again and serves the next job."""
    client = redis_server.client()
    worker = workers.start()
    wait_for(lambda: client.exists(KEYS.work(LEFT_HALF)), what="the worker's group")
    client.flushall()
    source = make_video(tmp_path / "in.mp4", frames=8)
    assert distributed(source, tmp_path / "out.mp4", redis_server.url).frames == 8
    assert worker.poll() is None
