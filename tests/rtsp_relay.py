"""A small RTSP relay for loopback tests: publishers RECORD to a path, readers PLAY the same path.

Run it with the system python, which has GStreamer's RTSP server through `gi`:

    /usr/bin/python3 tests/rtsp_relay.py --port 8554

It prints `READY <port>` once it listens on 127.0.0.1, and exits on SIGTERM or SIGINT.

A publisher (e.g. FFmpeg's RTSP muxer) does ANNOUNCE/RECORD on any path with H.264 video and optionally
AAC audio. Its RTP is depayloaded and parsed, not re-encoded, into appsinks. Each reader of that path
(DESCRIBE/PLAY, over TCP or UDP) gets its own pipeline of appsrcs and payloaders fed with those buffers,
from a video key frame on. When the publisher goes away its readers get end of stream (an RTCP BYE);
readers asking for a path that nobody publishes get 404 Not Found, so they can retry.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer
except (ImportError, ValueError) as error:
    sys.exit(
        f"rtsp_relay: GStreamer RTSP server bindings missing ({error}); install python3-gi, "
        "gir1.2-gst-rtsp-server-1.0, gstreamer1.0-rtsp, gstreamer1.0-plugins-good and -bad"
    )

# RECORD side: depayloader and parser for each SDP medium, by its RTP encoding name.
DEPAYLOADERS = {
    "H264": ("rtph264depay", "h264parse config-interval=-1 ! video/x-h264,stream-format=avc,alignment=au"),
    "MPEG4-GENERIC": ("rtpmp4gdepay", "aacparse"),
}
# PLAY side: payloader for each relayed stream, by the media type of its caps.
PAYLOADERS = {"video/x-h264": "rtph264pay", "audio/mpeg": "rtpmp4gpay"}
ELEMENTS = (
    "appsrc",
    "appsink",
    "rtpbin",
    "rtph264depay",
    "h264parse",
    "rtph264pay",
    "rtpmp4gdepay",
    "aacparse",
    "rtpmp4gpay",
)
CAPS_WAIT = 3.0  # seconds a DESCRIBE waits for a just-announced publisher's first buffers


def sdp_encodings(sdp: str) -> list[str]:
    """The RTP encoding name of each medium (m= section) of an SDP, in order, upper case."""
    encodings = []
    for section in re.split(r"^m=", sdp, flags=re.MULTILINE)[1:]:
        rtpmap = re.search(r"^a=rtpmap:\d+ ([^/\s]+)", section, re.MULTILINE)
        encodings.append(rtpmap[1].upper() if rtpmap else "?")
    return encodings


def record_bin(encodings: list[str]) -> Gst.Bin:
    """depay<i> ! parser ! appsink sink<i>, for each announced medium."""
    return Gst.parse_bin_from_description(
        " ".join(
            f"{DEPAYLOADERS[name][0]} name=depay{i} ! {DEPAYLOADERS[name][1]} ! "
            f"appsink name=sink{i} sync=false emit-signals=true"
            for i, name in enumerate(encodings)
        ),
        False,
    )


def play_bin(caps: list[Gst.Caps]) -> Gst.Bin:
    """appsrc src<i> (stamping buffers on arrival) ! payloader pay<i>, for each relayed stream."""
    bin_ = Gst.parse_bin_from_description(
        " ".join(
            f"appsrc name=src{i} is-live=true do-timestamp=true format=time ! "
            f"{PAYLOADERS[c.get_structure(0).get_name()]} name=pay{i} pt={96 + i}"
            for i, c in enumerate(caps)
        ),
        False,
    )
    for i, c in enumerate(caps):
        bin_.get_by_name(f"src{i}").set_property("caps", c)
    return bin_


class Reader:
    """The appsrcs of one PLAY pipeline, fed from the first video key frame on."""

    def __init__(self, sources: list[Gst.Element]):
        self.sources = sources
        self.video = [source.props.caps.get_structure(0).get_name().startswith("video/") for source in sources]
        self.started = False

    def push(self, index: int, buffer: Gst.Buffer) -> None:
        """Queues a buffer of stream `index` for sending."""
        if not self.started:
            if not self.video[index] or buffer.has_flags(Gst.BufferFlags.DELTA_UNIT):
                return
            self.started = True
        buffer = buffer.copy()  # shares the data; only the timestamps change
        buffer.pts = buffer.dts = Gst.CLOCK_TIME_NONE  # so that appsrc stamps it with its own clock
        self.sources[index].emit("push-buffer", buffer)

    def end(self) -> None:
        """Ends the streams: the reader's client gets an RTCP BYE."""
        for source in self.sources:
            source.emit("end-of-stream")


class Channel:
    """One path: its publisher (the bin of its RECORD media), the caps of its streams, and its readers."""

    def __init__(self):
        self.changed = threading.Condition()
        self.publisher: Gst.Bin | None = None
        self.caps: list[Gst.Caps | None] = []
        self.readers: list[Reader] = []

    def publisher_started(self, record: Gst.Bin, streams: int) -> None:
        """A new publisher takes over from any previous one, whose readers end."""
        with self.changed:
            self.publisher, self.caps = record, [None] * streams
            ended, self.readers = self.readers, []
            self.changed.notify_all()
        for reader in ended:
            reader.end()

    def publisher_stopped(self, record: Gst.Bin) -> None:
        """The publisher went away (TEARDOWN or lost connection): its readers end."""
        with self.changed:
            if record is not self.publisher:
                return
            self.publisher, self.caps = None, []
            ended, self.readers = self.readers, []
            self.changed.notify_all()
        for reader in ended:
            reader.end()

    def sample(self, record: Gst.Bin, index: int, sample: Gst.Sample) -> None:
        """Relays a buffer of stream `index` from the publisher's bin `record` to every reader."""
        with self.changed:
            if record is not self.publisher:
                return
            if self.caps[index] is None:
                self.caps[index] = sample.get_caps()
                self.changed.notify_all()
            readers = list(self.readers)
        for reader in readers:
            reader.push(index, sample.get_buffer())

    def wait_caps(self, timeout: float) -> list[Gst.Caps] | None:
        """The caps of all the publisher's streams, once known; None if nobody publishes."""
        with self.changed:
            self.changed.wait_for(lambda: self.publisher is None or all(self.caps), timeout)
            return list(self.caps) if self.publisher is not None and all(self.caps) else None

    def add_reader(self, reader: Reader) -> None:
        with self.changed:
            self.readers.append(reader)

    def remove_reader(self, reader: Reader) -> None:
        with self.changed:
            if reader in self.readers:
                self.readers.remove(reader)


class RelayFactory(GstRtspServer.RTSPMediaFactory):
    """Makes, for one path, a RECORD pipeline for an ANNOUNCE and a PLAY pipeline for a DESCRIBE."""

    def __init__(self, channel: Channel, router: Router):
        super().__init__()
        self.channel, self.router = channel, router
        self.set_shared(False)
        self.set_latency(0)  # RECORD side: no jitter-buffer delay (TCP keeps the order anyway)
        self.connect("media-configure", self.on_media_configure)

    def do_create_element(self, url):
        return self.router.pipeline_for_this_thread()

    def on_media_configure(self, factory, media: GstRtspServer.RTSPMedia) -> None:
        """Connects a RECORD pipeline's appsinks, or a PLAY pipeline's appsrcs, to the channel."""
        bin_ = media.get_element()
        streams = media.n_streams()
        if bin_.get_by_name("sink0") is not None:
            media.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
            self.channel.publisher_started(bin_, streams)
            for index in range(streams):
                bin_.get_by_name(f"sink{index}").connect("new-sample", self.on_sample, index)
            media.connect("unprepared", lambda media: self.channel.publisher_stopped(media.get_element()))
        else:
            reader = Reader([bin_.get_by_name(f"src{index}") for index in range(streams)])
            self.channel.add_reader(reader)
            media.connect("unprepared", lambda media: self.channel.remove_reader(reader))

    def on_sample(self, sink: Gst.Element, index: int) -> Gst.FlowReturn:
        self.channel.sample(sink.get_parent(), index, sink.emit("pull-sample"))
        return Gst.FlowReturn.OK


class Router(GstRtspServer.RTSPAuth):
    """Sees each request before its media is made: mounts new paths and plans RECORD or PLAY pipelines.

    A media factory is only told the URL, not the method, so for each ANNOUNCE or DESCRIBE the pipeline
    to build is prepared here and picked up by the factory, which runs next on the same client thread.
    Requests that cannot be served are answered here (415 for unsupported media, 404 if nobody publishes).
    """

    def __init__(self, mounts: GstRtspServer.RTSPMountPoints):
        super().__init__()
        self.mounts = mounts
        self.channels: dict[str, Channel] = {}
        self.lock = threading.Lock()
        self.pipelines: dict[int, Gst.Bin] = {}

    def do_check(self, ctx, check: str) -> bool:
        if check != GstRtspServer.RTSP_AUTH_CHECK_URL or ctx.method not in (
            GstRtsp.RTSPMethod.ANNOUNCE,
            GstRtsp.RTSPMethod.DESCRIBE,
        ):
            return True
        channel = self.channel(ctx.uri.abspath)
        if ctx.method == GstRtsp.RTSPMethod.ANNOUNCE:
            encodings = sdp_encodings(bytes(ctx.request.get_body()[1] or b"").decode(errors="replace"))
            if not encodings or any(name not in DEPAYLOADERS for name in encodings):
                return self.refuse(ctx, GstRtsp.RTSPStatusCode.UNSUPPORTED_MEDIA_TYPE)
            self.pipelines[threading.get_ident()] = record_bin(encodings)
        else:
            caps = channel.wait_caps(CAPS_WAIT)
            if caps is None:
                return self.refuse(ctx, GstRtsp.RTSPStatusCode.NOT_FOUND)
            self.pipelines[threading.get_ident()] = play_bin(caps)
        return True

    def channel(self, path: str) -> Channel:
        """The channel of a path, mounted on first use."""
        with self.lock:
            if path not in self.channels:
                self.channels[path] = Channel()
                self.mounts.add_factory(path, RelayFactory(self.channels[path], self))
            return self.channels[path]

    @staticmethod
    def refuse(ctx, code: GstRtsp.RTSPStatusCode) -> bool:
        """Answers the request with an error status; returns False so that the server goes no further."""
        response = GstRtsp.rtsp_message_new_response(code, GstRtsp.rtsp_status_as_text(code), ctx.request)[1]
        ctx.client.send_message(None, response)
        return False

    def pipeline_for_this_thread(self) -> Gst.Bin | None:
        return self.pipelines.pop(threading.get_ident(), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8554, help="TCP port on 127.0.0.1 (0: any free port)")
    args = parser.parse_args()
    Gst.init(None)
    missing = [name for name in ELEMENTS if Gst.ElementFactory.find(name) is None]
    if missing:
        sys.exit(
            f"rtsp_relay: GStreamer elements missing: {', '.join(missing)}; install gstreamer1.0-plugins-good "
            "and gstreamer1.0-plugins-bad"
        )
    server = GstRtspServer.RTSPServer(address="127.0.0.1", service=str(args.port))
    server.get_thread_pool().set_max_threads(64)  # a thread per client, so RECORD and PLAY run side by side
    server.set_auth(Router(server.get_mount_points()))
    if server.attach(None) == 0:
        sys.exit(f"rtsp_relay: cannot listen on 127.0.0.1:{args.port}")
    loop = GLib.MainLoop()
    for number in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, number, loop.quit)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
