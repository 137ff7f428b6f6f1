"""The Compose file's services, run as the same commands on this machine (no Docker engine here): Redis
started by deploy/redis/acl.sh with the secrets of deploy/make-secrets.sh, then the worker, the runner,
the status page and the producer, each connecting as its own Redis user through `--redis @FILE`. A job
runs end to end, a submitted one too; no password or token shows in `ps`; each user can do only its part."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from media import make_video, probe
from redis_fixtures import ROOT, environment, free_port
from test_deploy import compose, compose_command, compose_env
from test_redis import KEYS, LEFT_HALF, wait_for

DEPLOY = ROOT / "deploy"
ROLES = ("worker", "producer", "runner", "serve", "admin")


def local(words: list[str], folder: Path, ports: dict[str, str]) -> list[str]:
    """A container's command for this machine: the secrets and /data folders under `folder`, the demo
    model replaced by a tiny test model, container ports by free ports, binding loopback only."""
    out = []
    for word in words:
        word = word.replace("/run/secrets/", f"{folder / 'secrets'}/").replace(
            "/usr/local/etc/redis/", f"{DEPLOY}/redis/"
        )
        word = re.sub(r"^/data(?=/|$)", str(folder / "data"), word)
        out.append(ports.get(word, word))
    for index, word in enumerate(out[:-1]):
        if word == "--model":
            out[index + 1] = LEFT_HALF
        if word == "--host":
            out[index + 1] = "127.0.0.1"
    return out


def password(folder: Path, role: str) -> str:
    return re.match(r"redis://\w+:([^@]+)@", (folder / "secrets" / f"redis-{role}").read_text()).group(1)


@pytest.mark.timeout(180)
def test_compose_services_each_on_their_own_user(tmp_path):
    services = compose()["services"]
    subprocess.run(["sh", str(DEPLOY / "make-secrets.sh"), str(tmp_path / "secrets")], check=True, capture_output=True)
    assert (tmp_path / "secrets").stat().st_mode & 0o077 == 0, "only its owner may open the secrets folder"
    port = free_port()
    for role in ROLES:  # the same secrets, with this machine's address for the service name `redis`
        path = tmp_path / "secrets" / f"redis-{role}"
        text = path.read_text()
        assert text.startswith(f"redis://{role}:") and text.strip().endswith("@redis:6379/0")
        path.write_text(text.replace("@redis:6379/", f"@127.0.0.1:{port}/"))
    secrets = {role: password(tmp_path, role) for role in ROLES} | {
        "token": (tmp_path / "secrets/serve-token").read_text()
    }
    assert len(set(secrets.values())) == len(secrets) and all(len(value) >= 32 for value in secrets.values())
    (tmp_path / "data" / "in").mkdir(parents=True)
    (tmp_path / "data" / "out").mkdir()
    source = make_video(tmp_path / "data" / "in" / "input.mp4", frames=9)

    acl_env = dict(environment(), SECRETS=str(tmp_path / "secrets"), ACL_OUT=str(tmp_path / "users.acl"))
    command = [w for w in local(compose_command(services["redis"]), tmp_path, {}) if w != "docker-entrypoint.sh"]
    command += ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    started: list[subprocess.Popen] = []
    try:
        started.append(subprocess.Popen(command, env=acl_env, stdout=subprocess.DEVNULL))
        health = local(services["redis"]["healthcheck"]["test"][1:], tmp_path, {})
        wait_for(
            lambda: (
                subprocess.run(health, env=dict(acl_env, REDIS_PORT=str(port)), capture_output=True).stdout == b"PONG\n"
            ),
            what="the Redis health check",
        )
        assert (tmp_path / "users.acl").stat().st_mode & 0o077 == 0
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()  # the default user is off

        serve_port = free_port()
        for name in ("worker", "runner", "serve"):
            ports = {"9100": str(free_port()), "8080": str(serve_port)}
            started.append(
                subprocess.Popen(
                    [sys.executable, "-m", "streamer", *local(compose_command(services[name]), tmp_path, ports)],
                    env=environment(),
                    cwd=tmp_path,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        # the producer's job (frames go to the worker and the runner, the output comes back whole) and, at
        # the same time, a job submitted as compose's one-off command does (with the producer's environment)
        producer = local(compose_command(services["producer"]), tmp_path, {})
        assert "--model" not in producer, "the producer takes the workers' model, unet, by default"
        submitter = dict(environment())
        submitter.update({k: local([v], tmp_path, {})[0] for k, v in compose_env(services["producer"]).items()})
        jobs = [
            subprocess.Popen(
                [sys.executable, "-m", "streamer", *producer, "--model", LEFT_HALF, "-q", "--grace", "3"],
                env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            ),
            subprocess.Popen(
                [sys.executable, "-m", "streamer", "submit", str(source), "-o",
                 str(tmp_path / "data/out/submitted.mp4"), "--model", LEFT_HALF, "--wait", "--wait-timeout", "60"],
                env=submitter, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            ),
        ]  # fmt: skip
        time.sleep(1.0)
        ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
        for job in jobs:
            _, err = job.communicate(timeout=90)
            assert job.returncode == 0, err + "".join(_errors(started[1:]))
            assert "shows in `ps`" not in err, "no warning: no password on a command line"
        assert probe(tmp_path / "data" / "out" / "output.mp4")["frames"] == 9
        assert probe(tmp_path / "data" / "out" / "submitted.mp4")["frames"] == 9

        # the status page as its own user, with the token of the secret
        base = f"http://127.0.0.1:{serve_port}"
        request = urllib.request.Request(base + "/api/status", headers={"Authorization": f"Bearer {secrets['token']}"})
        wait_for(lambda: _ok(base + "/readyz"), what="serve ready")
        with urllib.request.urlopen(request, timeout=10) as response:
            state = json.load(response)
        assert sorted(job["state"] for job in state["jobs"]) == ["done", "done"]
        assert {worker["model"] for worker in state["workers"]} == {LEFT_HALF}
        assert len(state["workers"]) == 2, "the worker and the runner both announce themselves"
        for process in started[1:]:
            assert process.poll() is None, process.args
    finally:
        for process in started:  # draining is tested elsewhere: stop at once
            process.kill()
            process.wait()

    for value in secrets.values():
        assert value not in ps, "a password or the token shows in ps"
    assert "@" in ps and "/secrets/redis-" in ps, "the services were running when ps looked"

    # what each user may do: nothing outside its part
    def as_user(role):
        return redis.Redis(port=port, username=role, password=secrets[role])

    started = [subprocess.Popen(command, env=acl_env, stdout=subprocess.DEVNULL)]  # Redis again, same users
    try:
        wait_for(lambda: _pings(as_user("admin")), what="Redis again")
        admin = as_user("admin")
        admin.hset(KEYS.job("j1"), mapping={"state": "running", "spec": "{}"})
        worker, serve, producer = as_user("worker"), as_user("serve"), as_user("producer")
        assert worker.hget(KEYS.job("j1"), "state") == b"running"
        for write in (
            lambda: worker.hset(KEYS.job("j1"), "state", "done"),  # a worker never writes a job record
            lambda: worker.delete(KEYS.job("j1")),
            lambda: worker.xadd(KEYS.submitted, {"job": "x"}),
            lambda: serve.xadd(KEYS.submitted, {"job": "x"}),  # the page submits nothing
            lambda: serve.set(KEYS.preview("j1"), b"x"),
            lambda: serve.delete(KEYS.job("j1")),
            lambda: serve.xreadgroup("workers", "thief", {KEYS.work(LEFT_HALF): ">"}),
            lambda: serve.get("elsewhere"),
            lambda: producer.xreadgroup("workers", "thief", {KEYS.work(LEFT_HALF): ">"}),
            lambda: admin.flushall(),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                write()
        serve.hset(KEYS.job("j1"), "state", "cancelled")  # the page may cancel
        assert admin.hget(KEYS.job("j1"), "state") == b"cancelled"
    finally:
        started[0].kill()
        started[0].wait()


def _errors(processes: list[subprocess.Popen]) -> list[str]:
    """What the processes that ended said."""
    return [f"{process.args}: {process.stderr.read()}" for process in processes if process.poll() is not None]


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _pings(client) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False
