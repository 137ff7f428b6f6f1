"""A small RTSP relay for loopback tests: publishers RECORD to a path, readers PLAY the same path.

Run with the system python (it needs GStreamer's RTSP server through `gi`):

    /usr/bin/python3 tests/rtsp_relay.py --port 8554

prints `READY <port>` once it listens on 127.0.0.1 and stops on SIGTERM or SIGINT.

A publisher (e.g. FFmpeg's RTSP muxer) does ANNOUNCE/RECORD on any path with H.264 video and optionally
AAC audio. Its RTP is depayloaded and parsed (no re-encoding) into appsinks; every reader of the same path
(DESCRIBE/PLAY, over TCP or UDP) gets its own pipeline of appsrcs and payloaders fed with those buffers,
starting at a key frame. When the publisher goes away its readers get end-of-stream (an RTCP BYE), and
readers that connect while nobody publishes are refused, so they can retry until a publisher is back.
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
    sys.exit(f"rtsp_relay: GStreamer RTSP server bindings missing ({error}); install python3-gi, "
             "gir1.2-gst-rtsp-server-1.0, gstreamer1.0-rtsp, gstreamer1.0-plugins-good and -bad")

# RECORD side: depayloader and parser for each SDP medium, by its RTP encoding name.
DEPAYLOADERS = {
    "H264": ("rtph264depay", "h264parse config-interval=-1 ! video/x-h264,stream-format=avc,alignment=au"),
    "MPEG4-GENERIC": ("rtpmp4gdepay", "aacparse"),
}
# PLAY side: payload each relayed stream by the media type of its caps.
PAYLOADERS = {"video/x-h264": "rtph264pay config-interval=-1", "audio/mpeg": "rtpmp4gpay"}


def sdp_encodings(sdp: str) -> list[str]:
    """The RTP encoding name of each medium (m= section) of an SDP, in order, upper case."""
    sections = re.split(r"^m=", sdp, flags=re.MULTILINE)[1:]
    return [(re.search(r"^a=rtpmap:\d+ ([^/\s]+)", section, re.MULTILINE) or [None, "?"])[1].upper()
            for section in sections]


class Reader:
    """One PLAY pipeline's appsrcs; it is fed from the first video key frame on."""

    def __init__(self, sources: list[Gst.Element]):
        self.sources = sources
        self.video = [source.get_caps().get_structure(0).get_name().startswith("video/") for source in sources]
        self.started = False

    def push(self, index: int, buffer: Gst.Buffer) -> None:
        if not self.started:
            if not self.video[index] or buffer.has_flags(Gst.BufferFlags.DELTA_UNIT):
                return
            self.started = True
        buffer = buffer.copy()  # shares the data; only the timestamps change
        buffer.pts = buffer.dts = Gst.CLOCK_TIME_NONE  # appsrc do-timestamp stamps it on arrival
        self.sources[index].push_buffer(buffer)

    def end(self) -> None:
        for source in self.sources:
            source.end_of_stream()


class Channel:
    """The state of one path: the current publisher's stream caps, and its readers."""

    def __init__(self, path: str):
        self.path = path
        self.lock = threading.Lock()
        self.publisher: GstRtspServer.RTSPMedia | None = None
        self.caps: list[Gst.Caps | None] = []
        self.readers: list[Reader] = []

    def publisher_started(self, media: GstRtspServer.RTSPMedia, streams: int) -> None:
        with self.lock:
            self.publisher, self.caps = media, [None] * streams
            ended, self.readers = self.readers, []
        for reader in ended:
            reader.end()

    def publisher_stopped(self, media: GstRtspServer.RTSPMedia) -> None:
        with self.lock:
            if media is not self.publisher:
                return
            self.publisher, self.caps = None, []
            ended, self.readers = self.readers, []
        for reader in ended:
            reader.end()

    def sample(self, media: GstRtspServer.RTSPMedia, index: int, sample: Gst.Sample) -> None:
        with self.lock:
            if media is not self.publisher:
                return
            self.caps[index] = sample.get_caps()
            readers = list(self.readers)
        for reader in readers:
            reader.push(index, sample.get_buffer())

    def stream_caps(self) -> list[Gst.Caps] | None:
        """The caps of every stream of the current publisher, or None until all are known."""
        with self.lock:
            return list(self.caps) if self.caps and all(self.caps) else None

    def add_reader(self, reader: Reader) -> None:
        with self.lock:
            self.readers.append(reader)

    def remove_reader(self, reader: Reader) -> None:
        with self.lock:
            if reader in self.readers:
                self.readers.remove(reader)


class RelayFactory(GstRtspServer.RTSPMediaFactory):
    """Makes a RECORD pipeline for an ANNOUNCE and a PLAY pipeline for a DESCRIBE on one path."""

    def __init__(self, channel: Channel, requests: Router):
        super().__init__()
        self.channel, self.requests = channel, requests
        self.set_shared(False)
        self.set_latency(0)  # no jitter-buffer delay on the RECORD side
        self.set_transport_mode(GstRtspServer.RTSPTransportMode.PLAY)
        self.connect("media-configure", self.on_media_configure)

    def do_create_element(self, url):
        method, sdp = self.requests.current()
        if method == GstRtsp.RTSPMethod.ANNOUNCE:
            encodings = sdp_encodings(sdp)
            if not encodings or any(name not in DEPAYLOADERS for name in encodings):
                print(f"rtsp_relay: {self.channel.path}: unsupported media {encodings}", file=sys.stderr)
                return None
            return Gst.parse_bin_from_description(" ".join(
                f"{DEPAYLOADERS[name][0]} name=depay{i} ! {DEPAYLOADERS[name][1]} ! "
                f"appsink name=sink{i} sync=false emit-signals=true" for i, name in enumerate(encodings)), False)
        caps = self.channel.stream_caps()
        if caps is None:
            return None  # nobody publishes here (yet): the reader gets an error and may retry
        pipeline = Gst.parse_bin_from_description(" ".join(
            f"appsrc name=src{i} is-live=true do-timestamp=true format=time ! "
            f"{PAYLOADERS[c.get_structure(0).get_name()]} name=pay{i} pt={96 + i}" for i, c in enumerate(caps)), False)
        for i, c in enumerate(caps):
            pipeline.get_by_name(f"src{i}").set_property("caps", c)
        return pipeline

    def on_media_configure(self, factory, media: GstRtspServer.RTSPMedia) -> None:
        """Connects a new RECORD pipeline's appsinks, or a PLAY pipeline's appsrcs, to the channel."""
        bin_ = media.get_element()
        if bin_.get_by_name("sink0") is not None:
            media.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
            streams = media.n_streams()
            self.channel.publisher_started(media, streams)
            for index in range(streams):
                bin_.get_by_name(f"sink{index}").connect("new-sample", self.on_sample, media, index)
            media.connect("unprepared", self.channel.publisher_stopped)
        else:
            reader = Reader([bin_.get_by_name(f"src{i}") for i in range(media.n_streams())])
            self.channel.add_reader(reader)
            media.connect("unprepared", lambda media: self.channel.remove_reader(reader))

    def on_sample(self, sink, media: GstRtspServer.RTSPMedia, index: int) -> Gst.FlowReturn:
        self.channel.sample(media, index, sink.emit("pull-sample"))
        return Gst.FlowReturn.OK


class Router(GstRtspServer.RTSPAuth):
    """Sees every request first: mounts a relay on each new path and notes the request being handled.

    The media factory must build a RECORD or a PLAY pipeline but is only told the URL, so the method
    (and SDP) of the request that each client thread is handling is kept here for it.
    """

    def __init__(self, mounts: GstRtspServer.RTSPMountPoints):
        super().__init__()
        self.mounts = mounts
        self.channels: dict[str, Channel] = {}
        self.lock = threading.Lock()
        self.requests: dict[int, tuple[GstRtsp.RTSPMethod, str]] = {}

    def do_check(self, ctx, check: str) -> bool:
        if check == GstRtspServer.RTSP_AUTH_CHECK_URL and ctx.method in (
                GstRtsp.RTSPMethod.ANNOUNCE, GstRtsp.RTSPMethod.DESCRIBE):
            result, body = ctx.request.get_body()
            self.requests[threading.get_ident()] = (ctx.method, bytes(body or b"").decode(errors="replace"))
            path = ctx.uri.abspath
            with self.lock:
                if path not in self.channels:
                    self.channels[path] = Channel(path)
                    self.mounts.add_factory(path, RelayFactory(self.channels[path], self))
        return True

    def current(self) -> tuple[GstRtsp.RTSPMethod, str]:
        """The method and body of the request that this (client) thread is handling."""
        return self.requests.pop(threading.get_ident(), (GstRtsp.RTSPMethod.DESCRIBE, ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8554, help="TCP port on 127.0.0.1 (0: any free port)")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer(address="127.0.0.1", service=str(args.port))
    server.get_thread_pool().set_max_threads(64)  # one thread per client: RECORD and PLAY run side by side
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
