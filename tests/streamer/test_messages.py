"""Frame and result messages: versioned fields in, a checked Message out, MessageError on anything else."""

from __future__ import annotations

import json
import pickle
from fractions import Fraction

import numpy as np
import pytest

from streamer.distributed import messages
from streamer.distributed.messages import MAX_SIDE, Message, MessageError, decode, encode, job_of
from streamer.frames import Frame, Rendered
from streamer.prediction import Prediction

TB = Fraction(1001, 30000)


def image(height: int = 24, width: int = 32) -> np.ndarray:
    """A smooth colour gradient with a little texture (JPEG keeps it close)."""
    y, x = np.mgrid[0:height, 0:width]
    out = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), (x + y) * 255 // (width + height - 2)], -1)
    return out.astype(np.uint8)


def noisy(height: int = 24, width: int = 32) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)


def fields(**changes) -> dict[bytes, bytes]:
    """A valid raw-codec message with some fields replaced (None removes one)."""
    found = Prediction(class_ids=np.array([1]), scores=np.array([0.5], np.float32))
    out = encode(Message("job1", Rendered(3, 12345, TB, noisy(), found)))
    for name, value in changes.items():
        if value is None:
            out.pop(name.encode(), None)
        else:
            out[name.encode()] = value
    return out


@pytest.mark.parametrize("codec", ["raw", "png"])
def test_lossless_codecs_round_trip_exact_pixels(codec):
    pixels = noisy()
    message = decode(encode(Message("job-a", Frame(41, -7, TB, pixels)), codec))
    assert message.job == "job-a"
    frame = message.frame
    assert (frame.index, frame.pts, frame.time_base) == (41, -7, TB)
    assert frame.image.dtype == np.uint8 and frame.image.shape == pixels.shape
    assert np.array_equal(frame.image, pixels)
    assert frame.prediction is None


@pytest.mark.parametrize("codec", ["jpeg", "webp"])
def test_lossy_codecs_round_trip_close(codec):
    pixels = image()
    frame = decode(encode(Message("j", Frame(0, 0, TB, pixels)), codec, quality=95)).frame
    assert frame.image.shape == pixels.shape
    difference = np.abs(frame.image.astype(int) - pixels.astype(int))
    assert difference.mean() < 4
    # colour order survives (RGB in, RGB out): the red ramp runs left to right
    assert frame.image[:, -1, 0].mean() > 200 and frame.image[:, 0, 0].mean() < 50


def test_lossy_codec_quality_is_used():
    pixels = noisy()
    low = encode(Message("j", Frame(0, 0, TB, pixels)), "jpeg", quality=10)[b"data"]
    high = encode(Message("j", Frame(0, 0, TB, pixels)), "jpeg", quality=95)[b"data"]
    assert len(low) < len(high)


@pytest.mark.parametrize("codec", ["raw", "png", "jpeg"])
def test_a_frames_prediction_survives_the_wire(codec):
    height, width = image().shape[:2]
    masks = np.zeros((height, width, 2), bool)
    masks[2:9, 3:14, 0] = True
    masks[10:20, 1:30, 1] = True
    found = Prediction(
        masks=masks,
        class_ids=np.array([1, 3], np.int32),
        scores=np.array([0.98765432, 0.5], np.float32),
        boxes=np.array([[2, 3, 9, 14], [10, 1, 20, 30]], np.int32),
        class_names=("BG", "person", "dog", "car"),
    )
    got = decode(encode(Message("j", Rendered(5, 10, TB, image(), found)), codec)).frame.prediction
    assert np.array_equal(got.masks, masks) and np.array_equal(got.class_ids, found.class_ids)
    assert np.array_equal(got.scores, found.scores) and np.array_equal(got.boxes, found.boxes)
    assert got.class_names == ("?", "person", "?", "car")  # enough to name every instance
    semantic = np.zeros((height, width), np.uint8)
    semantic[:, :7] = 1
    semantic[5:, 20:] = 2
    got = decode(encode(Message("j", Rendered(5, 10, TB, image(), Prediction(semantic=semantic))), codec))
    assert np.array_equal(got.frame.prediction.semantic, semantic)
    assert decode(encode(Message("j", Rendered(5, 10, TB, image(), None)), codec)).frame.prediction is None


def test_a_record_whose_masks_do_not_fit_the_frame_is_refused_before_decoding():
    huge = {"class_ids": [1], "masks": [{"size": [100000, 100000], "counts": "abc"}], "scores": [0.5]}
    with pytest.raises(MessageError, match="run-length"):
        decode(fields(detections=json.dumps(huge).encode()))


def test_job_of_reads_only_the_two_fields():
    assert job_of(fields()) == ("job1", 3)
    assert job_of(fields(index=b"x")) is None
    assert job_of(fields(job=None)) is None


def test_unknown_codec_is_refused_both_ways():
    with pytest.raises(MessageError, match="gif"):
        encode(Message("j", Frame(0, 0, TB, image())), "gif")
    with pytest.raises(MessageError, match="gif"):
        decode(fields(codec=b"gif"))


@pytest.mark.parametrize("version", [b"2", b"0", b"", None])
def test_wrong_or_missing_version_is_rejected(version):
    with pytest.raises(MessageError, match="version"):
        decode(fields(v=version))


@pytest.mark.parametrize("name", ["job", "index", "pts", "tb", "shape", "codec", "data"])
def test_missing_field_is_rejected(name):
    with pytest.raises(MessageError):
        decode(fields(**{name: None}))


@pytest.mark.parametrize("value", [b"1.5", b"three", b"", b"0x10", b"-1"])
def test_non_integer_or_negative_index_is_rejected(value):
    with pytest.raises(MessageError):
        decode(fields(index=value))


@pytest.mark.parametrize("value", [b"2.5", b"now"])
def test_non_integer_pts_is_rejected(value):
    with pytest.raises(MessageError):
        decode(fields(pts=value))


@pytest.mark.parametrize(
    "shape",
    [
        b"24,32,3,1",  # four dimensions
        b"24,32",  # two
        b"24,32,4",  # not RGB
        f"{MAX_SIDE + 1},32,3".encode(),  # a huge side
        f"24,{10**9},3".encode(),
        b"0,32,3",
        b"-24,32,3",
        b"24;32;3",
    ],
)
def test_bad_shape_is_rejected(shape):
    with pytest.raises(MessageError):
        decode(fields(shape=shape))


def test_raw_payload_of_the_wrong_length_is_rejected():
    good = fields()
    with pytest.raises(MessageError, match="does not fit"):
        decode(fields(data=good[b"data"][:-1]))
    with pytest.raises(MessageError, match="does not fit"):
        decode(fields(data=good[b"data"] + b"\0"))
    with pytest.raises(MessageError, match="does not fit"):
        decode(fields(shape=b"24,31,3"))


def test_oversized_payload_is_rejected_before_decoding():
    good = fields()
    size = len(good[b"data"])
    assert decode(good, max_payload=size).frame.index == 3
    with pytest.raises(MessageError, match="limit"):
        decode(good, max_payload=size - 1)


@pytest.mark.parametrize("detections", [b"[1, 2]", b'"text"', b"42", b"null", b"{not json", b"\xff\xfe\xfd"])
def test_detections_that_are_not_a_json_object_are_rejected(detections):
    with pytest.raises(MessageError):
        decode(fields(detections=detections))


@pytest.mark.parametrize("tb", [b"1/0", b"0/0", b"1", b"1/2/3", b"a/b", b"1.5/2"])
def test_bad_time_base_is_rejected(tb):
    with pytest.raises(MessageError):
        decode(fields(tb=tb))


@pytest.mark.parametrize("payload", [b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"garbage" * 100])
def test_garbage_under_an_image_codec_is_rejected(payload):
    with pytest.raises(MessageError):
        decode(fields(codec=b"png", data=payload))


def test_an_image_decoding_to_another_shape_is_rejected():
    other = encode(Message("j", Frame(0, 0, TB, noisy(24, 30))), "png")[b"data"]
    with pytest.raises(MessageError):
        decode(fields(codec=b"png", data=other))


@pytest.mark.parametrize("codec", [b"png", b"jpeg"])
def test_empty_payload_under_an_image_codec_is_rejected(codec):
    with pytest.raises(MessageError):
        decode(fields(codec=codec, data=b""))


def test_deeply_nested_detections_are_rejected():
    with pytest.raises(MessageError):
        decode(fields(detections=b"[" * 100_000))


@pytest.mark.parametrize("name", ["job", "codec"])
def test_non_utf8_text_fields_are_rejected(name):
    with pytest.raises(MessageError):
        decode(fields(**{name: b"\xff\xfe"}))


class Boom:
    """Unpickling this would run `explode`."""

    def __reduce__(self):
        return (_explode, ())


EXPLODED = []


def _explode():
    EXPLODED.append(True)
    return "exploded"


def test_nothing_is_ever_unpickled(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a message was unpickled")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    payload = pickle.dumps(Boom())
    payload += b"\0" * (-len(payload) % 3)
    width = len(payload) // 3

    # a pickle as raw pixels is just bytes of an image
    message = decode(fields(shape=f"1,{width},3".encode(), data=payload))
    assert message.frame.image.tobytes() == payload
    # and under an image codec, or as detections, it is refused
    with pytest.raises(MessageError):
        decode(fields(codec=b"png", data=payload))
    with pytest.raises(MessageError):
        decode(fields(detections=payload))
    assert EXPLODED == []
    assert "pickle" not in vars(messages)


def decoded_frame(height: int = 24, width: int = 33, pix_fmt: str = "yuv420p") -> Frame:
    """A frame as a decoder gives it: a YUV 4:2:0 picture (odd width: chroma rounds up), BT.709-tagged."""
    import av

    picture = av.VideoFrame.from_ndarray(image(height, width), format="rgb24").reformat(
        format=pix_fmt, dst_colorspace="ITU709"
    )
    return Frame(4, 40, TB, decoded=picture)


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuvj420p"])
def test_a_decoded_picture_travels_as_its_planes_exactly(pix_fmt):
    from streamer.effects.planes import plane_views

    frame = decoded_frame(pix_fmt=pix_fmt)
    sent = encode(Message("job-1", frame))
    assert sent[b"pix"].startswith(pix_fmt.encode()) and len(sent[b"data"]) == 24 * 33 + 2 * 12 * 17
    back = decode(sent).frame
    picture = back.picture()  # not converted to RGB on the way
    assert picture.format.name == pix_fmt and (picture.width, picture.height) == (33, 24)
    assert (picture.colorspace, picture.color_range) == (frame.decoded.colorspace, frame.decoded.color_range)
    assert all(np.array_equal(a, b) for a, b in zip(plane_views(frame.decoded), plane_views(picture)))
    assert back.index == 4 and back.pts == 40 and back.time_base == TB


def test_a_read_frame_and_other_codecs_travel_as_rgb():
    frame = decoded_frame()
    assert b"pix" not in encode(Message("j", frame), "png")
    frame.image[0, 0] = 255  # read, and so maybe drawn on: its RGB pixels are what travels
    sent = encode(Message("j", frame))
    assert b"pix" not in sent and decode(sent).frame.image[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize(
    "pix, trim",
    [
        (b"yuv444p,1,1", 0),  # not 4:2:0
        (b"yuv420p,99,1", 0),  # no such colour matrix
        (b"yuv420p,1,7", 0),  # no such range
        (b"yuv420p,1", 0),  # a field missing
        (b"yuv420p,1,1", 1),  # a byte short
    ],
)
def test_bad_planes_are_rejected(pix, trim):
    sent = encode(Message("j", decoded_frame()))
    sent[b"pix"] = pix
    sent[b"data"] = sent[b"data"][: len(sent[b"data"]) - trim]
    with pytest.raises(MessageError):
        decode(sent)


def test_planes_under_an_image_codec_are_rejected():
    sent = encode(Message("j", decoded_frame()))
    sent[b"codec"] = b"png"
    with pytest.raises(MessageError):
        decode(sent)
