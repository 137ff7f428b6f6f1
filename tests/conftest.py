import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# tests that import OpenVINO themselves (importorskip) do it as the model loader does: with no usage report, whose
# forked sender could keep the test run from exiting
sys.modules.setdefault("openvino_telemetry", None)


@pytest.fixture
def run_cli(capsys):
    """Run `streamer ARGS...` in this process; returns (exit code, stdout, stderr)."""
    from streamer.cli import main

    def run(*args):
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def redis_server(tmp_path):
    from redis_fixtures import RedisServer

    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def workers(redis_server):
    from redis_fixtures import Workers

    pool = Workers(redis_server.url)
    yield pool
    pool.stop_all()
