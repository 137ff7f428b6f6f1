"""What a worker may read and write for jobs submitted by others.

Anyone who can write to Redis can submit a job, so a worker runs a submitted job only when its
input and output are allowed: paths under allowed folders (by default the worker's current
directory; symlinks are followed before the check), and URLs under allowed prefixes. Network
streams (http, https, rtsp, rtmp) are allowed by default except to loopback, link-local and other
local addresses, so a submitted job cannot reach services on the worker's own host or cloud metadata
endpoints. A refusal says only that the path or URL is not allowed: never whether it exists.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
import socket
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from streamer.errors import StreamerError
from streamer.secrets import redact

if TYPE_CHECKING:
    from streamer.job import ProcessConfig
    from streamer.models import ModelConfig

NETWORK_SCHEMES = frozenset({"http", "https", "rtsp", "rtsps", "rtmp", "rtmps"})
RESOLVE_TIMEOUT = 5.0  # seconds to resolve a host name before refusing the URL
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):")  # two letters at least: C:\ is a path


def is_url(value: str) -> bool:
    return _SCHEME.match(value) is not None


@dataclass
class Confinement:
    """Allowed inputs and outputs: folders, or URL prefixes such as `s3://bucket/in/` or `http://10.0.0.5:8000/`."""

    inputs: list[str] = field(default_factory=list)  # empty: the current directory
    outputs: list[str] = field(default_factory=list)  # empty: the current directory
    base: str = field(default_factory=os.getcwd)  # relative paths are relative to this

    def check_input(self, value: str) -> None:
        if not self._allowed(value, self.inputs, network=True):
            raise StreamerError(
                f"input {redact(value)} is not allowed on this worker; it reads only under "
                f"{self._describe(self.inputs)} (worker option --allow-input)"
            )

    def check_job(self, job: ProcessConfig) -> None:
        """Every path a job reads or writes: its input, model files, outputs and detections file."""
        self.check_input(job.input)
        self.check_model(job.model)
        for target in job.outputs().targets:
            self.check_output(target)
        if job.detections:
            self.check_output(job.detections)

    def check_model(self, model: ModelConfig) -> None:
        """A model's own files: its weights (a published weights file by its release name: that file's URL) and
        its settings file."""
        from streamer.models import registry

        package = registry().get(model.name)
        releases = package.releases if package else {}
        for read in (releases.get(model.weights or "", model.weights), model.config_file):
            if read:
                self.check_input(read)

    def check_output(self, value: str) -> None:
        if not self._allowed(value, self.outputs, network=False):
            raise StreamerError(
                f"output {redact(value)} is not allowed on this worker; it writes only under "
                f"{self._describe(self.outputs)} (worker option --allow-output)"
            )

    def _allowed(self, value: str, allowed: list[str], network: bool) -> bool:
        if not value or "\0" in value:
            return False
        prefixes = [entry for entry in allowed if is_url(entry)]
        folders = [entry for entry in allowed if not is_url(entry)] or ([] if allowed else [self.base])
        if is_url(value):
            if any(_url_under(value, prefix) for prefix in prefixes):
                return True
            return network and _public_stream(value)
        path = os.path.realpath(os.path.join(self.base, os.path.expanduser(value)))
        return any(_inside(path, os.path.realpath(os.path.join(self.base, folder))) for folder in folders)

    def _describe(self, allowed: list[str]) -> str:
        return ", ".join(redact(entry) for entry in allowed) if allowed else "its current folder"


def _inside(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:
        return False


def _url_under(url: str, prefix: str) -> bool:
    """`url` is `prefix` or below it: same scheme, host and port, path under the prefix's (after `..`)."""
    try:
        a, b = urlsplit(url), urlsplit(prefix)
        if a.scheme.lower() != b.scheme.lower():
            return False
        if b.netloc and ((a.hostname or "") != (b.hostname or "") or a.port != b.port):
            return False
    except ValueError:  # a port that is not a number
        return False
    if b.path in ("", "/"):
        return True
    path = posixpath.normpath(a.path) if a.path else "/"
    folder = b.path.rstrip("/")
    return path == folder or path.startswith(folder + "/")


def _public_stream(url: str) -> bool:
    """A network stream to a host that is not this machine, its link, or an unroutable address."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in NETWORK_SCHEMES or not parts.hostname:
        return False
    addresses = _resolve(parts.hostname)
    if not addresses:
        return False
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast or ip.is_reserved:
            return False
    return True


def _resolve(host: str) -> list[str]:
    """The host's addresses, or [] when it does not resolve within RESOLVE_TIMEOUT."""
    found: list[str] = []

    def lookup():
        try:
            found.extend({info[4][0] for info in socket.getaddrinfo(host, None)})
        except (OSError, UnicodeError):
            pass

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(RESOLVE_TIMEOUT)
    return list(found) if not thread.is_alive() else []
