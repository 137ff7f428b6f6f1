"""A real redis-server on a free port, and real worker processes, for the distributed tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """redis-server on 127.0.0.1:<free port>, optionally with a password."""

    def __init__(self, folder: Path, password: str | None = None, aclfile: Path | None = None, user: str = ""):
        """With `aclfile`, the users it defines; `user` and `password` are then those the fixture connects as."""
        self.folder, self.password, self.aclfile, self.user = folder, password, aclfile, user
        self.port = free_port()
        self.process = None

    @property
    def url(self) -> str:
        return self.url_for(self.user, self.password)

    def url_for(self, user: str = "", password: str | None = None) -> str:
        auth = f"{user}:{password}@" if password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed; run bash scripts/test.sh, which installs it")
        command = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
        ]
        if self.aclfile:
            command += ["--aclfile", str(self.aclfile)]
        elif self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.time() + 10
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def environment() -> dict:
    return dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}", TF_CPP_MIN_LOG_LEVEL="2")


class Workers:
    """`streamer worker` processes started and stopped by a test."""

    def __init__(self, url: str):
        self.url = url
        self.processes: list[subprocess.Popen] = []

    def start(self, *args: str, model: str = "tests.models:left_half", jobs: int = 0) -> subprocess.Popen:
        command = [
            sys.executable,
            "-m",
            "streamer",
            "worker",
            "--model",
            model,
            "--redis",
            self.url,
            "--jobs",
            str(jobs),
            *args,
        ]
        process = subprocess.Popen(command, env=environment(), cwd=ROOT, stderr=subprocess.PIPE, text=True)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
