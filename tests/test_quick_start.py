"""The first hour of a new user: the README's quick start, what scripts/demo.sh prints next, what
scripts/test.sh installs, and the line that says when the bundled demo weights run."""

import json
import re
import shlex
from pathlib import Path

import pytest
from media import make_video

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
QUICK_START = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]


def commands(text: str) -> list[list[str]]:
    """The `streamer …` commands in a text, without the program name and comments."""
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("streamer "):
            found.append(shlex.split(line)[1:])
    return found


def test_the_quick_start_says_how_to_reach_streamer_and_demo_sh_prints_the_same_next_steps():
    demo = (ROOT / "scripts" / "demo.sh").read_text()
    printed = demo.split("<<'NEXT'", 1)[1].split("\nNEXT", 1)[0]
    assert ". .venv/bin/activate" in QUICK_START and ".venv/bin/streamer" in QUICK_START
    assert ". .venv/bin/activate" in printed and ".venv/bin/streamer" in printed
    shown = commands(QUICK_START.split("```sh", 1)[1].split("```", 1)[0])
    assert shown and shown == commands(printed)
    # the demo's own commands, those it prints and the README's parse as the real parser reads them
    from streamer.cli import build_parser

    ran = [shlex.split(line)[1:] for line in demo.splitlines() if line.startswith(".venv/bin/streamer ")]
    for args in ran + shown:
        parsed = build_parser(args).parse_args(args)
        assert parsed.command == args[0]


def test_the_readme_names_what_test_sh_installs_and_how_long_it_takes():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    debs = re.search(r'debs="([^"]+)"', setup)[1].split()
    text = " ".join(QUICK_START.split())
    for deb in debs:
        assert f"{deb}" in text, deb
    assert re.search(r"takes about \d+ minutes on 2 cores", text)
    assert "echo" in setup.split("apt-get install")[0].rsplit("sudo_cmd=", 1)[1]  # said before installing


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("demo") / "in.mp4", frames=3, width=96, height=64)


def test_the_demo_weights_say_what_they_are(clip, tmp_path, run_cli):
    from workers.maskrcnn.weights import DEMO_NOTE as SHAPES
    from workers.unet.weights import DEMO_NOTE as ROADS
    from workers.unet.weights import DEMO_WEIGHTS

    code, _, err = run_cli("process", clip, "-o", tmp_path / "a.mp4")
    assert code == 0, err
    assert err.count(ROADS) == 1 and "--weights" in ROADS and "synthetic roads" in ROADS
    assert "--weights" in SHAPES and "shapes" in SHAPES
    code, _, err = run_cli("process", clip, "-o", tmp_path / "b.mp4", "--weights", DEMO_WEIGHTS)
    assert code == 0 and ROADS not in err  # weights given: the user chose them
    code, _, err = run_cli("process", clip, "-o", tmp_path / "c.mp4", "-q")
    assert code == 0 and err == ""  # -q: no notes either
    assert "demo weights, trained only on synthetic videos" in " ".join(README[:2000].split())


def test_the_road_model_names_its_class(clip, tmp_path, run_cli):
    """--detections of the U-Net name the class "road", as its annotations do; a file of one's own can say
    otherwise with --class-names."""
    code, _, err = run_cli("process", clip, "-o", tmp_path / "a.mp4", "--detections", tmp_path / "a.jsonl", "-q")
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(row["classes"] in ([], ["road"]) for row in rows)
    assert any(row["classes"] == ["road"] for row in rows), rows
    args = ("--detections", tmp_path / "b.jsonl", "--class-names", "BG,lane", "-q")
    code, _, err = run_cli("process", clip, "-o", tmp_path / "b.mp4", *args)
    assert code == 0, err
    assert "lane" in (tmp_path / "b.jsonl").read_text() and "road" not in (tmp_path / "b.jsonl").read_text()


@pytest.mark.parametrize(
    "count,noun,text", [(0, "frame", "0 frames"), (1, "detection", "1 detection"), (2, "image", "2 images")]
)
def test_counts_agree_with_their_nouns(count, noun, text):
    from streamer.progress import counted

    assert counted(count, noun) == text
