"""Write under a temporary name, publish whole: locally by rename, to a bucket in one upload."""

import pytest

from streamer.errors import StreamerError
from streamer.publish import AtomicFile, atomic_path, atomic_write, partial_name, temp_name


def names(folder):
    return sorted(path.name for path in folder.iterdir())


def test_published_on_a_clean_exit(tmp_path):
    target = tmp_path / "out.json"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.") and tmp.name.endswith(".part.json")
        tmp.write_text("whole")
        assert names(tmp_path) == [tmp.name]  # nothing at the target while writing
    assert names(tmp_path) == ["out.json"] and target.read_text() == "whole"


def test_a_string_target_and_a_replaced_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(str(target)) as tmp:
        tmp.write_text("new")
    assert names(tmp_path) == ["out.txt"] and target.read_text() == "new"


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_an_exception_leaves_nothing(tmp_path, error):
    target = tmp_path / "out.bin"
    with pytest.raises(type(error)):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise error
    assert names(tmp_path) == []


def test_an_exception_keeps_the_previous_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert names(tmp_path) == ["out.bin"] and target.read_bytes() == b"previous"


def test_refuses_to_overwrite_when_asked_not_to(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("keep me")
    with pytest.raises(StreamerError, match="already exists"):
        with atomic_path(target, overwrite=False) as tmp:
            tmp.write_text("new")
    assert names(tmp_path) == ["out.txt"] and target.read_text() == "keep me"
    fresh = tmp_path / "fresh.txt"
    with atomic_path(fresh, overwrite=False) as tmp:
        tmp.write_text("first")
    assert fresh.read_text() == "first"


def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(StreamerError, match="cannot write in .*missing"):
        with atomic_path(tmp_path / "missing" / "out.txt"):
            pass
    assert names(tmp_path) == []


def test_temporary_names_keep_every_extension():
    assert temp_name("best.weights.h5").endswith(".part.weights.h5")
    assert temp_name("model.keras").startswith(".model.") and temp_name("model.keras").endswith(".part.keras")
    assert temp_name("noext").startswith(".noext.") and temp_name("noext").endswith(".part")
    assert temp_name("out.mp4") != temp_name("out.mp4")
    assert partial_name("/a/out.mp4").as_posix() == "/a/out.partial.mp4"


def test_explicit_form_publish_abort_and_partial(tmp_path):
    published = AtomicFile(tmp_path / "a.txt")
    published.path.write_text("a")
    assert published.publish() == tmp_path / "a.txt"
    published.abort()  # after publishing: nothing to undo
    assert (tmp_path / "a.txt").read_text() == "a"

    aborted = AtomicFile(tmp_path / "b.txt")
    aborted.path.write_text("b")
    aborted.abort()
    with pytest.raises(StreamerError, match="already aborted"):
        aborted.publish()

    partial = AtomicFile(tmp_path / "c.mp4")
    partial.path.write_text("c")
    assert partial.keep_partial() == tmp_path / "c.partial.mp4"
    assert names(tmp_path) == ["a.txt", "c.partial.mp4"]


def test_atomic_write_locally_and_on_a_non_bucket_file_system(tmp_path):
    atomic_write(tmp_path / "m.json", b"{}")
    assert names(tmp_path) == ["m.json"]
    import fsspec

    memory = fsspec.filesystem("memory")
    try:
        atomic_write("memory://publish-test/m.json", b"one")
        atomic_write("memory://publish-test/m.json", b"two")
        assert memory.ls("/publish-test", detail=False) == ["/publish-test/m.json"]  # no staging file left
        assert memory.cat_file("/publish-test/m.json") == b"two"
    finally:
        memory.rm("/publish-test", recursive=True)


def objects(s3, prefix="videos/out"):
    s3.invalidate_cache()
    return sorted(s3.find(prefix))


def test_bucket_object_appears_only_when_complete(s3):
    url = "s3://videos/out/a.jsonl"
    with atomic_path(url, s3.storage) as tmp:
        assert tmp.name.startswith(".a.") and tmp.suffix == ".jsonl"
        tmp.write_text("line\n" * 1000)
        assert objects(s3) == []  # written locally: nothing in the bucket yet
    assert objects(s3) == ["videos/out/a.jsonl"] and s3.cat_file("videos/out/a.jsonl") == b"line\n" * 1000
    assert not tmp.exists()


def test_bucket_upload_goes_straight_to_its_key(s3, monkeypatch):
    """One upload to the target key: no staging object that a killed process could leave behind."""
    destinations = []
    put_file = s3.put_file  # streamer's file system for these options is this very instance (fsspec caches it)

    def spy(local, key, **options):
        destinations.append(key)
        return put_file(local, key, **options)

    monkeypatch.setattr(s3, "put_file", spy)
    monkeypatch.setattr(s3, "mv", lambda *args, **kwargs: pytest.fail("a bucket needs no rename"))
    with atomic_path("s3://videos/out/b.mp4", s3.storage) as tmp:
        tmp.write_bytes(b"video")
    assert destinations == ["videos/out/b.mp4"] and objects(s3) == ["videos/out/b.mp4"]


@pytest.mark.parametrize("error", [RuntimeError("encoder failed"), KeyboardInterrupt()])
def test_bucket_gets_nothing_on_an_exception(s3, error):
    with pytest.raises(type(error)):
        with atomic_path("s3://videos/out/c.mp4", s3.storage) as tmp:
            tmp.write_bytes(b"half")
            raise error
    assert objects(s3) == [] and not tmp.exists()


def test_bucket_refuses_to_overwrite_and_reports_failed_uploads(s3):
    s3.pipe_file("videos/out/d.txt", b"keep me")
    with pytest.raises(StreamerError, match="already exists"):
        with atomic_path("s3://videos/out/d.txt", s3.storage, overwrite=False) as tmp:
            tmp.write_text("new")
    assert s3.cat_file("videos/out/d.txt") == b"keep me" and not tmp.exists()

    secret = {**s3.storage, "secret": "hunter2-not-shown"}
    with pytest.raises(StreamerError, match="upload failed") as failure:
        with atomic_path("s3://no-such-bucket/e.txt", secret) as tmp:
            tmp.write_text("lost")
    assert "hunter2" not in str(failure.value) and not tmp.exists()


def test_atomic_write_to_a_bucket(s3):
    atomic_write("s3://videos/out/manifest.json", b'{"a": 1}', s3.storage)
    atomic_write("s3://videos/out/manifest.json", b'{"a": 2}', s3.storage)
    assert objects(s3) == ["videos/out/manifest.json"]
    assert s3.cat_file("videos/out/manifest.json") == b'{"a": 2}'
