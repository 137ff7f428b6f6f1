"""The batch command: plan which inputs are left, and process them here or share them through Redis."""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

from streamer.batch.config import BatchConfig, VideoReport, skipped_report
from streamer.batch.manifest import write_manifest
from streamer.batch.shared import run_shared
from streamer.batch.state import MANIFEST, StateStore, _object_store, is_done
from streamer.batch.task import make_task, run_video, runner_name
from streamer.errors import StreamerError
from streamer.models import load_model
from streamer.storage import Entry, expand, filesystem, is_remote


def shard_of(name: str, count: int) -> int:
    """The slice (0..count-1) an input belongs to: stable by its name, whatever the other inputs."""
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big") % count


def inputs(config: BatchConfig) -> list[Entry]:
    entries = expand(config.inputs, config.storage)
    names = [entry.name for entry in entries]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise StreamerError(
            f"several inputs are named {', '.join(duplicates)}; outputs mirror names, so batch them separately"
        )
    if config.shard:
        index, count = config.shard
        entries = [entry for entry in entries if shard_of(entry.name, count) == index]
    return entries


def _legacy_done(config: BatchConfig, store: StateStore) -> dict[str, dict]:
    """Records of a manifest written before per-video state existed (so an old batch still resumes)."""
    fs, folder = filesystem(config.dest, config.storage)
    path = f"{folder.rstrip('/')}/{MANIFEST}"
    try:
        data = json.loads(fs.cat_file(path))
    except (FileNotFoundError, ValueError):
        return {}
    if data.get("version") != 1:
        return {}
    return {url.rstrip("/").rsplit("/", 1)[-1]: record for url, record in data.get("videos", {}).items()}


def _outputs(config: BatchConfig) -> set[str]:
    """Names of the files at DEST (one listing)."""
    fs, folder = filesystem(config.dest, config.storage)
    if is_remote(config.dest):
        fs.invalidate_cache(folder)
    try:
        return {path.rstrip("/").rsplit("/", 1)[-1] for path in fs.ls(folder, detail=False)}
    except FileNotFoundError:
        return set()


def plan(config: BatchConfig, store: StateStore) -> tuple[list[Entry], set[str], dict[str, dict]]:
    """(entries, names already done, their records)."""
    entries = inputs(config)
    states = store.read_all()
    legacy = _legacy_done(config, store) if not states else {}
    candidates = [e for e in entries if is_done(states.get(e.name) or legacy.get(e.name), e)]
    present = _outputs(config) if candidates else set()
    done = {entry.name for entry in candidates if entry.name in present}
    return entries, done, states


def run_batch(config: BatchConfig, on_video=None, runners=None) -> list[VideoReport]:
    """Process every input not already done; returns one report per input, in input order. With Redis,
    `runners(stop)` starts this command's own runners (streamer.service.pool.RunnerPool)."""
    store = StateStore(config.dest, config.storage)
    fs, folder = filesystem(config.dest, config.storage)
    if not store.remote or not _object_store(fs):
        fs.makedirs(folder, exist_ok=True)
    entries, done, states = plan(config, store)
    since = time.time()
    if config.redis is not None:
        reports = run_shared(config, entries, done, states, since, on_video, runners)
    else:
        reports = _run_local(config, store, entries, done, states, since, on_video)
    write_manifest(config.dest, config.storage)
    return reports


def _run_local(config, store, entries, done, states, since, on_video) -> list[VideoReport]:
    todo = [entry for entry in entries if entry.name not in done]
    model = load_model(config.job.model) if todo else None

    def one(entry: Entry) -> VideoReport:
        if entry.name in done:
            report = skipped_report(config, entry, states.get(entry.name))
        else:
            report = run_video(make_task(config, entry, since), runner_name(), model, config.storage, store)
        if on_video:
            on_video(report)
        return report

    with ThreadPoolExecutor(max_workers=max(1, config.workers)) as pool:
        return list(pool.map(one, entries))
