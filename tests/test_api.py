"""The Python API: `streamer.process`, `streamer.frames`, `streamer.load_model`, and the README's examples."""

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from media import make_video, probe

import streamer

ROOT = Path(__file__).resolve().parent.parent
LEFT_HALF = "tests.models:left_half"
TWO = "tests.models:two_instances"


def readme_examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Python API", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_import_is_cheap_and_typed():
    code = "import sys, streamer; streamer.process, streamer.frames, streamer.load_model\n"
    code += "print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    assert (ROOT / "streamer" / "py.typed").is_file()
    assert streamer.process.__doc__ and streamer.frames.__doc__ and streamer.load_model.__doc__


def test_readme_examples_run(tmp_path, monkeypatch):
    """The README's examples as written, with a small test model in place of U-Net (same calls)."""
    examples = readme_examples()
    assert len(examples) == 4
    make_video(tmp_path / "in.mp4", frames=6)
    monkeypatch.chdir(tmp_path)
    for code in examples * 2:  # each can run again, over what it wrote the first time
        code = code.replace('"unet"', f'"{LEFT_HALF}"')
        assert len(code.strip().splitlines()) <= 8
        exec(compile(code, "README.md", "exec"), {})
    assert probe(tmp_path / "out.mp4")["frames"] == 6
    assert (tmp_path / "in.jsonl").is_file() and probe(tmp_path / "in.mp4.out.mp4")["frames"] == 6


def test_an_existing_output_is_refused_in_python_words(tmp_path):
    source = make_video(tmp_path / "in.mp4", frames=2)
    (tmp_path / "out.mp4").write_bytes(b"kept")
    with pytest.raises(streamer.StreamerError, match=r"already exists; pass .*overwrite=True"):
        streamer.process(source, tmp_path / "out.mp4", model=LEFT_HALF)
    assert (tmp_path / "out.mp4").read_bytes() == b"kept"


def test_process_calls_on_frame_in_order_with_the_prediction(tmp_path):
    source = make_video(tmp_path / "in.mp4", frames=9)
    seen = []
    result = streamer.process(
        source,
        tmp_path / "out.mp4",
        model=TWO,
        effect="instances",
        batch_size=2,
        on_frame=lambda frame, prediction: seen.append((frame.index, prediction)),
    )
    assert result.frames == 9 and result.output == str(tmp_path / "out.mp4")
    assert [index for index, _ in seen] == list(range(9))
    prediction = seen[0][1]
    assert prediction.class_ids.tolist() == [1, 2]
    assert prediction.masks.shape == (48, 64, 2) and prediction.masks[:24, :32, 0].all()
    assert prediction.boxes.tolist() == [[0, 0, 24, 32], [24, 32, 48, 64]]


def test_frames_yields_in_order_and_closes_on_break(tmp_path):
    source = make_video(tmp_path / "in.mp4", frames=40)
    before = threading.active_count()
    loop = streamer.frames(source, model=LEFT_HALF, batch_size=3)
    indices = []
    for frame, prediction in loop:
        indices.append(frame.index)
        assert prediction.semantic[:, :32].all() and not prediction.semantic[:, 32:].any()
        if frame.index == 4:
            break
    started = time.monotonic()
    loop.close()
    assert time.monotonic() - started < 5
    assert indices == [0, 1, 2, 3, 4]
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before  # decode and inference threads are gone
    assert [f.index for f, _ in streamer.frames(source, model=LEFT_HALF)] == list(range(40))


def test_load_model_once_for_several_videos(tmp_path):
    model = streamer.load_model(LEFT_HALF)
    for name in ("a", "b"):
        source = make_video(tmp_path / f"{name}.mp4", frames=3)
        result = streamer.process(source, tmp_path / f"{name}-out.mp4", model=model, effect="mask")
        image = probe(tmp_path / f"{name}-out.mp4")["images"][0]
        assert result.frames == 3 and image[:, :30].mean() > 240 and image[:, 34:].mean() < 15
    assert isinstance(np.zeros(1), np.ndarray)


def test_bad_options_are_clear(tmp_path):
    source = make_video(tmp_path / "in.mp4", frames=2)
    with pytest.raises(TypeError, match="did you mean overwrite"):
        streamer.process(source, tmp_path / "o.mp4", model=LEFT_HALF, overwrit=True)
    with pytest.raises(streamer.StreamerError, match="instances"):
        streamer.process(source, tmp_path / "o.mp4", model="unet", effect="instances")


def test_frames_runs_the_pipeline_process_runs_trimming_and_classes_included(tmp_path):
    """`frames` and `process` give the same frames, timestamps and predictions, with `start`, `duration`,
    `stride` and `classes` applied the same way."""
    source = make_video(tmp_path / "in.mp4", frames=30)
    seen = []
    options = dict(start=0.2, duration=0.6, stride=2, classes="circle", batch_size=2)
    streamer.process(
        source,
        tmp_path / "out.mp4",
        model=TWO,
        effect="instances",
        on_frame=lambda frame, prediction: seen.append((frame.index, frame.pts, prediction)),
        **options,
    )
    got = [(frame.index, frame.pts, prediction) for frame, prediction in streamer.frames(source, TWO, **options)]
    assert [(i, pts) for i, pts, _ in got] == [(i, pts) for i, pts, _ in seen] and len(got) == 9
    for (_, _, one), (_, _, other) in zip(got, seen):
        assert one.class_ids.tolist() == other.class_ids.tolist() == [2]  # only the circles
        assert np.array_equal(one.masks, other.masks) and np.array_equal(one.boxes, other.boxes)
