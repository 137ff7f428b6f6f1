"""A batch's progress and its summary, DEST/manifest.json, from the per-video state objects."""

from __future__ import annotations

import json
import time

from streamer.batch.state import MANIFEST, STALE, StateStore
from streamer.distributed.jobs import DONE, FAILED, RUNNING
from streamer.publish import atomic_write
from streamer.storage import join


def state_progress(dest: str, storage: dict | None = None, stale: float = STALE, records: dict | None = None) -> dict:
    """A batch's progress from its state objects alone (no Redis): counts, frames per second, ETA."""
    if records is None:
        records = StateStore(dest, storage).read_all()
    now = time.time()
    counts = {DONE: 0, FAILED: 0, RUNNING: 0, "interrupted": 0}
    frames, first, last = 0, None, None
    for record in records.values():
        state = record.get("state")
        if state == RUNNING and now - float(record.get("heartbeat", 0)) >= stale:
            state = "interrupted"
        counts[state] = counts.get(state, 0) + 1
        frames += int(record.get("frames") or 0)
        if record.get("started"):
            first = min(first or record["started"], record["started"])
        stamp = record.get("updated") or record.get("heartbeat")
        if stamp:
            last = max(last or stamp, stamp)
    elapsed = (last - first) if first and last and last > first else 0.0
    finished = counts[DONE] + counts[FAILED]
    left = counts[RUNNING] + counts["interrupted"]
    return {
        "videos": len(records),
        "done": counts[DONE],
        "failed": counts[FAILED],
        "running": counts[RUNNING],
        "interrupted": counts["interrupted"],
        "frames": frames,
        "fps": round(frames / elapsed, 2) if elapsed else 0.0,
        "eta": round(left * elapsed / finished, 1) if finished and left and elapsed else None,
    }


def write_manifest(dest: str, storage: dict | None = None) -> dict:
    """DEST/manifest.json: every video's state and the totals, from the state objects; returns it."""
    store = StateStore(dest, storage)
    records = store.read_all()
    videos = {record.get("input", name): record for name, record in sorted(records.items())}
    manifest = {
        "version": 2,
        "written": time.time(),
        "summary": state_progress(dest, storage, records=records),
        "videos": videos,
    }
    atomic_write(join(dest, MANIFEST), json.dumps(manifest, indent=1).encode(), storage)
    return manifest
