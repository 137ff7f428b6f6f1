"""One name per concept across commands (streamer/cli/options.py): every command's options agree with the
table, old spellings still parse (hidden from --help), devices as users type them, and the exit codes."""

import argparse
import re
from pathlib import Path

import pytest
from media import make_video

from streamer.cli import build_parser
from streamer.cli.options import OPTIONS, device, shown

ROOT = Path(__file__).resolve().parent.parent


def parsers(parser: argparse.ArgumentParser, path: str = ""):
    """Every command's parser (train/evaluate/inspect's per model too), with its name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, f"{path} {name}".strip())
    if path:
        yield path, parser


def test_every_command_spells_the_shared_options_as_the_table_does():
    meanings = {}
    for command, parser in parsers(build_parser()):
        actions = [action for action in parser._actions if action.option_strings]
        for action in actions:
            hidden = action.help == argparse.SUPPRESS
            for flag in action.option_strings:
                name = shown(flag)
                if hidden or name is None:
                    continue
                meanings.setdefault(flag, set()).add(name)  # a flag shown anywhere means one thing everywhere
                option = OPTIONS[name]
                assert tuple(action.option_strings) == option.flags, (command, flag, action.option_strings)
                for old in option.old:  # its old spellings are there, hidden, filling the same field
                    twins = [a for a in actions if old in a.option_strings and a.dest == action.dest]
                    assert twins and all(a.help == argparse.SUPPRESS for a in twins), (command, old)
        for action in actions:  # an old spelling never shows
            for flag in action.option_strings:
                olds = [name for name, option in OPTIONS.items() if flag in option.old]
                if olds and action.help != argparse.SUPPRESS:
                    assert shown(flag) and tuple(action.option_strings) == OPTIONS[shown(flag)].flags, (command, flag)
    assert all(len(names) == 1 for names in meanings.values()), meanings
    assert meanings["--batch"] == {"batch"} and meanings["--workers"] == {"local workers"}
    assert "--batch-size" not in meanings and "--weights-out" in meanings and "--runners" in meanings


@pytest.mark.parametrize(
    "args,field,value",
    [
        (["process", "in.mp4", "--batch-size", "3"], "batch", 3),
        (["worker", "--redis", "redis://x", "--batch-size", "2"], "batch", 2),
        (["batch", "a.mp4", "-o", "out", "--workers", "2"], "workers", 2),
        (["batch", "a.mp4", "-o", "out", "--parallel", "3"], "workers", 3),
        (["batch", "a.mp4", "-o", "out", "--runners", "4"], "workers", 4),
        (["train", "unet", "--batch-size", "5"], "batch_size", 5),
        (["train", "unet", "--batch", "6"], "batch_size", 6),
        (["train", "maskrcnn", "--output", "w.h5"], "output", "w.h5"),
        (["train", "maskrcnn", "--weights-out", "w.h5"], "output", "w.h5"),
        (["evaluate", "maskrcnn", "--data", "shapes", "--batch-size", "2"], "batch_size", 2),
        (["process", "in.mp4", "--device", "0"], "device", "/GPU:0"),
        (["worker", "--redis", "redis://x", "--device", "cpu"], "device", "/CPU:0"),
    ],
)
def test_old_and_new_spellings_fill_the_same_field(args, field, value):
    assert getattr(build_parser(args).parse_args(args), field) == value


@pytest.mark.parametrize(
    "text,name",
    [
        ("0", "/GPU:0"),
        ("1", "/GPU:1"),
        ("cpu", "/CPU:0"),
        ("CPU", "/CPU:0"),
        ("gpu", "/GPU:0"),
        ("cuda:1", "/GPU:1"),
        ("GPU:2", "/GPU:2"),
        ("/GPU:0", "/GPU:0"),
        ("/device:GPU:1", "/device:GPU:1"),
    ],
)
def test_devices_as_users_type_them(text, name):
    assert device(text) == name


def test_a_device_that_is_none_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stopped:
        build_parser(["process"]).parse_args(["process", "in.mp4", "--device", "banana"])
    assert stopped.value.code == 2 and "give cpu, a GPU number" in capsys.readouterr().err


def test_exit_codes_are_one_table(tmp_path, run_cli):
    """2: usage or bad input; 1: a failure while running; 130: interrupted (tests/test_interrupt.py)."""
    readme = (ROOT / "README.md").read_text()
    table = dict(re.findall(r"^\| `(\d+)` \| (.+?) \|$", readme.split("### Exit codes", 1)[1], re.M))
    assert set(table) == {"0", "1", "2", "130"}, table
    source = make_video(tmp_path / "in.mp4", frames=12)
    code, _, err = run_cli("process", tmp_path / "none.mp4")
    assert code == 2 and "no such file" in err
    code, _, err = run_cli("process", source, "-o", tmp_path / "o.mp4", "--model", "tests.models:crash_on_bright")
    assert code == 1 and "processing failed" in err and not (tmp_path / "o.mp4").exists()
