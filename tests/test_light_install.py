"""Without the models extra (`pip install streamer`): submit, status, cancel, serve and sample work; the
commands that load a model say which extra to install. The model stack is hidden from a subprocess by a
meta-path hook, as if it were not installed."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

from redis_fixtures import ROOT, environment, free_port

MODEL_STACK = ("tensorflow", "keras", "albumentations", "h5py")

# `streamer ARGS` with the model stack (or the modules in HIDE) not importable; fails if any got imported anyway
WITHOUT_MODELS = f"""
import importlib.abc, os, sys
STACK = tuple(os.environ["HIDE"].split(",")) if os.environ.get("HIDE") else {MODEL_STACK!r}
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in STACK:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, NotInstalled())
from streamer.cli import main
code = main(sys.argv[1:])
loaded = sorted(name for name in sys.modules if name.split(".")[0] in STACK)
assert not loaded, loaded
sys.exit(code)
"""


def streamer(*args, hide_models: bool = True, timeout: float = 60, hide=()) -> subprocess.CompletedProcess:
    program = (
        WITHOUT_MODELS if hide_models else "import sys; from streamer.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run(
        [sys.executable, "-c", program, *[str(arg) for arg in args]],
        env=dict(environment(), HIDE=",".join(hide)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_sample_shapes_imports_no_model_framework(tmp_path):
    """Even with TensorFlow installed, drawing the shapes sample does not import it."""
    video, truth = tmp_path / "shapes.mp4", tmp_path / "shapes.json"
    program = (
        "import sys; from streamer.cli import main; code = main(sys.argv[1:]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))); sys.exit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", program, "sample", "shapes", "-o", str(video), "--seconds", "0.5", "--size", "96x64"]
        + ["--annotations", str(truth), "-q"],
        env=environment(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert video.stat().st_size > 0 and truth.stat().st_size > 0
    assert "TensorFlow" not in result.stderr and "cuda" not in result.stderr.lower()


def test_producer_commands_run_without_the_model_stack(tmp_path, redis_server):
    result = streamer("sample", "road", "-o", tmp_path / "road.mp4", "--seconds", "0.2", "--size", "64x48", "-q")
    assert result.returncode == 0, result.stderr
    result = streamer("submit", tmp_path / "road.mp4", "-o", tmp_path / "out.mp4", "--redis", redis_server.url)
    assert result.returncode == 0, result.stderr
    job = result.stdout.strip()
    result = streamer("status", "--json", "--redis", redis_server.url)
    assert result.returncode == 0, result.stderr
    assert job in result.stdout
    result = streamer("cancel", job, "--redis", redis_server.url)
    assert (result.returncode, result.stdout.strip()) == (0, f"cancelled {job}"), result.stderr


def test_serve_runs_without_the_model_stack(redis_server):
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-c", WITHOUT_MODELS, "serve", "--redis", redis_server.url, "--port", str(port)],
        env=environment(),
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, ready = time.time() + 30, None
        while time.time() < deadline and ready is None and serve.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    ready = response.status
            except OSError:
                time.sleep(0.1)
        assert ready == 200, serve.stderr.read() if serve.poll() is not None else "no answer"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert "streamer_redis_up 1.0" in response.read().decode()
    finally:
        serve.terminate()
        serve.wait(timeout=10)


def test_model_commands_name_the_extra_to_install(tmp_path, redis_server):
    source = tmp_path / "road.mp4"
    assert streamer("sample", "road", "-o", source, "--seconds", "0.2", "--size", "64x48", "-q").returncode == 0
    for args in (
        ("process", source, "-o", tmp_path / "out.mp4"),
        ("process", source, "-o", tmp_path / "out.mp4", "--model", "maskrcnn"),
        ("worker", "--model", "unet", "--jobs", "0", "--redis", redis_server.url),
    ):
        result = streamer(*args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("streamer: error: "), result.stderr
        assert "pip install 'streamer[models]'" in lines[0]


# Each command that needs an extra, with the options that need it, and the extra its error names. The modules of
# one extra are hidden at a time (the others stay installed), so each check is seen to name the right one.
NEEDS = [
    (("train", "unet", "--data", "synthetic-roads", "--epochs", "1", "--out", "{out}"), "models"),
    (("train", "unet", "--data", "synthetic-roads", "--epochs", "1", "--out", "{out}"), "plots"),
    (("train", "maskrcnn", "--data", "shapes", "--epochs", "1", "--out", "{out}"), "plots"),
    (("inspect", "unet", "{video}", "-o", "{out}"), "plots"),
    (("inspect", "maskrcnn", "{video}", "-o", "{out}"), "models"),
    (("evaluate", "unet", "--data", "synthetic-roads"), "models"),
    (("evaluate", "maskrcnn", "--data", "shapes"), "models"),
    (("export", "unet", "--format", "onnx", "-o", "{out}"), "onnx"),
    (("export", "maskrcnn", "--format", "savedmodel", "-o", "{out}"), "models"),
    (("process", "{video}", "--runtime", "openvino", "-o", "{out}"), "openvino"),
    (("batch", "{video}", "-o", "{out}"), "models"),
]
HIDDEN = {
    "models": MODEL_STACK,
    "plots": ("matplotlib",),
    "onnx": ("onnx", "tf2onnx", "onnxruntime"),
    "openvino": ("openvino",),
}


def test_every_command_checks_its_extras_before_any_work(tmp_path):
    """In an install without the extra, each command stops at once (nothing written, no model built) with one
    line naming the extra; the README's table of extras says the same."""
    import re
    from concurrent.futures import ThreadPoolExecutor

    video = tmp_path / "in.mp4"
    assert streamer("sample", "road", "-o", video, "--seconds", "0.2", "--size", "64x48", "-q").returncode == 0

    def attempt(numbered):
        number, (args, extra) = numbered
        out = tmp_path / f"out-{number}"
        words = [str(word).format(video=video, out=out) for word in args]
        started = time.monotonic()
        result = streamer(*words, hide=HIDDEN[extra], timeout=120)
        return (args, extra), result, time.monotonic() - started, out

    with ThreadPoolExecutor(2) as pool:
        for (args, extra), result, seconds, out in pool.map(attempt, enumerate(NEEDS)):
            lines = result.stderr.strip().splitlines()
            assert result.returncode == 2 and len(lines) == 1, (args, extra, result.stderr)
            assert f"pip install 'streamer[{extra}]'" in lines[0], (args, lines)
            assert not out.exists(), args  # stopped before any work
            assert seconds < 30, (args, seconds)
    readme = (ROOT / "README.md").read_text()
    table = dict(re.findall(r"^\| `\[(\w+)\]` \| (.+?) \|$", readme, re.M))
    assert set(table) >= set(HIDDEN), table
    for args, extra in NEEDS:
        assert f"`{args[0]}" in table[extra], (args[0], extra, table[extra])
