"""Batches shared through Redis, as `status` and the status page show them: read from Redis alone, without the
pipeline that `streamer.batch` runs them with."""

from __future__ import annotations

import json
import time

import redis

from streamer.distributed.jobs import DONE, FAILED

SKIPPED = "skipped"  # besides the job states: finished earlier (by an earlier run or another runner)


def batch_progress(client: redis.Redis, namespace: str = "streamer") -> list[dict]:
    """Every batch shared through Redis: videos done/failed/left, frames per second over all its
    runners, ETA. For `streamer status` and the status page."""
    listed = []
    for raw in client.zrange(f"{namespace}:batches", 0, -1):
        bid = raw.decode()
        record = {k.decode(): v.decode() for k, v in client.hgetall(f"{namespace}:batch:{bid}").items()}
        if not record:
            client.zrem(f"{namespace}:batches", bid)
            continue
        states = [json.loads(value).get("state") for value in client.hvals(f"{namespace}:batch:{bid}:videos")]
        done = sum(state in (DONE, SKIPPED) for state in states)
        failed = sum(state == FAILED for state in states)
        total = int(record.get("total") or 0)
        left = max(0, total - done - failed)
        running = client.hlen(f"{namespace}:batch:{bid}:queued")
        started = float(record.get("started") or time.time())
        ended = float(record.get("updated") or time.time()) if not running else time.time()
        elapsed = max(ended - started, 1e-6)
        processed = int(record.get("processed") or 0)
        listed.append(
            {
                "batch": bid,
                "dest": record.get("dest"),
                "total": total,
                "done": done,
                "failed": failed,
                "left": left,
                "queued": running,
                "frames": int(record.get("frames") or 0),
                "fps": round(int(record.get("frames") or 0) / elapsed, 2),
                "eta": round(left * elapsed / processed, 1) if processed and left and running else None,
            }
        )
    return listed
