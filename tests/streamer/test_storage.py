"""Cloud and local paths: which ones fsspec handles, globbing inputs, joining outputs."""

import pytest

from streamer.errors import StreamerError
from streamer.storage import Entry, expand, filesystem, is_remote, join


def test_which_urls_are_for_fsspec():
    assert is_remote("s3://bucket/a.mp4") and is_remote("GS://bucket/a.mp4") and is_remote("memory://x")
    for other in ("a.mp4", "/data/a.mp4", "http://host/a.mp4", "RTSP://cam/1", "file:///data/a.mp4", "srt://h:1"):
        assert not is_remote(other), other


def test_an_unknown_protocol_says_what_to_install():
    with pytest.raises(StreamerError, match=r"nosuch://b/a\.mp4: cannot use nosuch:// .*pip install"):
        filesystem("nosuch://b/a.mp4", {"secret": "hunter2"})


def test_join_keeps_urls_and_paths_apart():
    assert join("s3://bucket/out/", "a.mp4") == "s3://bucket/out/a.mp4"
    assert join("s3://bucket/out", "a.mp4") == "s3://bucket/out/a.mp4"
    assert join("out", "a.mp4") == "out/a.mp4"


def test_expand_local_globs_sorted_without_folders_or_duplicates(tmp_path):
    for name in ("b.mp4", "a.mp4", "c.mkv"):
        (tmp_path / name).write_bytes(b"x" * len(name))
    (tmp_path / "folder.mp4").mkdir()
    entries = expand([str(tmp_path / "*.mp4"), str(tmp_path / "a.mp4"), str(tmp_path / "c.mkv")])
    assert [entry.name for entry in entries] == ["a.mp4", "b.mp4", "c.mkv"]
    assert [entry.url for entry in entries] == [str(tmp_path / name) for name in ("a.mp4", "b.mp4", "c.mkv")]
    assert all(entry.size == 5 and entry.version for entry in entries)


def test_a_pattern_that_matches_nothing_is_an_error(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    with pytest.raises(StreamerError, match=r"\*\.mkv: matches no file"):
        expand([str(tmp_path / "a.mp4"), str(tmp_path / "*.mkv")])
    with pytest.raises(StreamerError, match="missing.mp4: matches no file"):
        expand([str(tmp_path / "missing.mp4")])


def test_a_changed_file_has_a_new_version(tmp_path):
    path = tmp_path / "a.mp4"
    path.write_bytes(b"one")
    before = expand([str(path)])[0]
    path.write_bytes(b"three")
    after = expand([str(path)])[0]
    assert after.size == 5 and after != before


def test_expand_a_bucket_glob_to_urls_with_etags(s3):
    s3.pipe_file("videos/in/b.mp4", b"bb")
    s3.pipe_file("videos/in/a.mp4", b"a")
    s3.pipe_file("videos/in/notes.txt", b"n")
    entries = expand(["s3://videos/in/*.mp4"], s3.storage)
    assert [(entry.url, entry.size) for entry in entries] == [("s3://videos/in/a.mp4", 1), ("s3://videos/in/b.mp4", 2)]
    assert entries[0].version and entries[0].version != entries[1].version and '"' not in entries[0].version
    assert entries[0] == Entry("s3://videos/in/a.mp4", 1, entries[0].version)


def test_bucket_errors_do_not_show_the_credentials(s3):
    options = {**s3.storage, "secret": "hunter2-not-shown"}
    with pytest.raises(StreamerError, match="matches no file") as failure:
        expand(["s3://videos/nothing/*.mp4"], options)
    assert "hunter2" not in str(failure.value)
