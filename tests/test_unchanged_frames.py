"""Frames an effect leaves as they are reach the encoder as decoded (no colour round trip); frames it changes are
encoded from the rendered pixels; counts, timestamps and audio are kept either way."""

from fractions import Fraction

import av
import numpy as np
import pytest
from media import frame_image, make_video, probe

from streamer.frames import Frame, Rendered
from streamer.prediction import Prediction
from streamer.sink import VideoSink

LOSSLESS = ("--codec", "libx264", "--crf", "0", "-q")


def planes(path):
    """Each frame's Y, U and V planes as decoded, stacked (what the encoder was given, when it encoded losslessly)."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray() for frame in container.decode(video=0)]


def level(index):
    """The brightness of the left half of test frame `index`."""
    return int(frame_image(index, 4, 4)[0, 0, 0])


def packets(path):
    """(stream type, dts in seconds) of every packet, in file order."""
    with av.open(str(path)) as container:
        return [(p.stream.type, float(p.dts * p.time_base)) for p in container.demux() if p.dts is not None]


def test_identity_output_has_the_input_frames_timestamps_pixels_and_audio(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mp4", frames=40, width=96, height=64, rate=Fraction(25), audio="aac")
    output = tmp_path / "out.mp4"
    code, _, err = run_cli("process", source, "-o", output, "--model", "identity", "--batch", "3", *LOSSLESS)
    assert code == 0, err
    before, after = probe(source), probe(output)
    assert after["frames"] == 40
    assert after["times"] == pytest.approx(before["times"], abs=1e-6)
    # lossless encoding of the decoded pictures gives back the input's YUV exactly: no YUV → RGB → YUV rounding
    assert all(np.array_equal(a, b) for a, b in zip(planes(source), planes(output), strict=True))
    assert after["audio_codec"] == "aac"
    assert after["audio_seconds"] == pytest.approx(before["audio_seconds"], abs=0.03)
    # audio and video interleaved: no stretch of a second or more of one stream before the other catches up
    order = packets(output)
    video = [at for kind, at in order if kind == "video"]
    audio = [at for kind, at in order if kind == "audio"]
    assert audio[0] == pytest.approx(0, abs=0.05) and audio[-1] == pytest.approx(video[-1], abs=0.1)
    last = {"video": 0.0, "audio": 0.0}
    for kind, at in order:
        last[kind] = at
        assert abs(last["video"] - last["audio"]) < 1.0


def test_frames_an_effect_changes_are_encoded_from_the_rendered_pixels(tmp_path, run_cli):
    """A model that finds the left half only on bright frames: those are tinted, the others pass untouched, in
    one output."""
    source = make_video(tmp_path / "in.mp4", frames=12, width=64, height=48)
    output = tmp_path / "out.mkv"
    code, _, err = run_cli(
        "process", source, "-o", output, "--model", "tests.models:left_half_when_bright", "--color", "0,255,0",
        "--alpha", "0.5", "--pix-fmt", "yuv444p", *LOSSLESS,
    )  # fmt: skip
    assert code == 0, err
    inputs, outputs = probe(source)["images"], probe(output)["images"]
    assert len(outputs) == 12
    left, right = slice(2, 30), slice(34, 62)  # away from the mask edge
    tinted = 0
    for original, rendered in zip(inputs, outputs):
        if original[:, left].mean() > 120:
            expected = original[:, left].astype(float) * 0.5 + np.array([0, 255, 0]) * 0.5
            assert np.abs(rendered[:, left] - expected).max() <= 3
            tinted += 1
        else:
            assert np.abs(rendered[:, left].astype(int) - original[:, left]).max() <= 3
        assert np.abs(rendered[:, right].astype(int) - original[:, right]).max() <= 3
    assert 0 < tinted < 12


def test_a_callback_drawing_on_the_frame_is_in_the_output(tmp_path):
    from streamer.api import process

    source = make_video(tmp_path / "in.mp4", frames=6, width=64, height=48)
    output = tmp_path / "out.mp4"

    def draw(frame, prediction):
        frame.image[:8, :8] = 255  # drawn in place, as on any numpy image

    process(str(source), str(output), model="identity", on_frame=draw, overwrite=True)
    for image in probe(output)["images"]:
        assert image[1:7, 1:7].min() > 230 and image[20:40, 40:60, 0].max() < 40


def test_scaled_and_reformatted_outputs_of_untouched_frames(tmp_path, run_cli):
    source = make_video(tmp_path / "in.mkv", frames=8, width=64, height=48, pix_fmt="yuv444p")
    for name, extra, size in (("small.mp4", ("--scale", "32:-2"), (32, 24)), ("same.mp4", (), (64, 48))):
        code, _, err = run_cli("process", source, "-o", tmp_path / name, "--model", "identity", "-q", *extra)
        assert code == 0, err
        after = probe(tmp_path / name)
        assert after["frames"] == 8 and after["size"] == size and after["pix_fmt"] == "yuv420p"
        for index, image in enumerate(after["images"]):
            assert abs(int(np.median(image[:, : size[0] // 2 - 2])) - level(index)) <= 4


def test_a_decoded_frame_is_converted_only_when_its_pixels_are_read(tmp_path):
    source = make_video(tmp_path / "in.mp4", frames=1, width=64, height=48)
    with av.open(str(source)) as container:
        decoded = next(container.decode(video=0))
    frame = Frame(0, 0, Fraction(1, 30), decoded=decoded)
    assert frame.shape == (48, 64, 3) and frame.picture() is decoded
    moved = frame.numbered(5)
    assert moved.index == 5 and moved.picture() is decoded
    restamped = frame.numbered(6, 900, Fraction(1, 90000))
    assert (restamped.pts, restamped.time_base, restamped.seconds) == (900, Fraction(1, 90000), 0.01)
    found = Prediction(semantic=np.zeros((48, 64), np.uint8))
    rendered = moved.unchanged(found)
    assert isinstance(rendered, Rendered) and rendered.prediction is found and rendered.picture() is decoded
    image = rendered.image
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert abs(int(np.median(image[:, :28])) - level(0)) <= 3
    assert rendered.picture() is image  # read, so maybe drawn on: the image is what gets encoded now
    with pytest.raises(ValueError):
        Frame(0, 0, Fraction(1, 30))


def test_sink_takes_decoded_pictures_and_rgb_images_in_one_stream(tmp_path):
    source = make_video(tmp_path / "in.mp4", frames=6, width=64, height=48)
    with av.open(str(source)) as container:
        decoded = list(container.decode(video=0))
    target = tmp_path / "out.mp4"
    sink = VideoSink(target, 64, 48, Fraction(30), Fraction(1, 30))
    for index, picture in enumerate(decoded):
        sink.write(picture if index % 2 else frame_image(index, 64, 48), index, Fraction(1, 30))
    sink.close()
    after = probe(target)
    assert after["frames"] == 6 and after["times"] == pytest.approx([i / 30 for i in range(6)], abs=1e-6)
    for index, image in enumerate(after["images"]):
        assert abs(int(np.median(image[:, :28])) - level(index)) <= 4
