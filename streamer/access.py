"""Who may use `streamer serve`: a credential, a Host allowlist, an Origin check on POST, security headers
and a request size limit, as one WSGI wrapper around the app.

- The credential is one token: `Authorization: Bearer TOKEN`, or basic auth with any user name and the
  token as its password (`curl -u streamer:TOKEN`). The page's own files (which hold no data) and the
  `open` paths (health, readiness, metrics) need none; every other route answers 401 without it.
- The Host header must name an allowed host (DNS rebinding: a foreign site's name that resolves to this
  machine); the probes' paths are exempt, since kubelet and Prometheus send the pod's address.
- A POST whose Origin is not this server's own (a page of another site) is refused, as is a cross-site
  fetch (Sec-Fetch-Site).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from streamer.httpd import App, respond_json

ANY = "*"
MAX_BODY = 16 * 1024  # bytes a request body may have: the API takes none larger than `{}`
HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
]


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_hosts(bound: str) -> frozenset[str]:
    """The names a browser may use for a server bound to `bound`: localhost, loopback addresses, and the
    bound address itself unless it is a wildcard (0.0.0.0, ::), which names no host."""
    hosts = {"localhost", "127.0.0.1", "::1"}
    if bound not in ("", "0.0.0.0", "::"):
        hosts.add(bound.strip("[]").lower())
    return frozenset(hosts)


def host_name(value: str) -> str:
    """The host of a Host header (`name:port`, `[v6]:port`), lower case, without the port."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


@dataclass(frozen=True)
class Access:
    token: str | None  # None: no credential (--no-auth, loopback only)
    allowed_hosts: frozenset[str]  # host names without port; "*" allows any
    public: frozenset[str] = frozenset({"/", "/index.html", "/app.js", "/style.css"})  # the page's files
    open: frozenset[str] = field(default_factory=lambda: frozenset({"/healthz", "/readyz", "/metrics"}))

    def host_allowed(self, host: str) -> bool:
        return ANY in self.allowed_hosts or host_name(host) in self.allowed_hosts

    def authorized(self, header: str) -> bool:
        if self.token is None:
            return True
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "basic":
            try:
                value = base64.b64decode(value, validate=True).decode().partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                return False
        elif scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(value.encode(), self.token.encode())


def guarded(app: App, access: Access) -> App:
    """`app` behind `access`; every response carries the security headers."""

    def wrapped(environ: dict, start_response: Callable):
        def start(status, headers, exc_info=None):
            return start_response(status, [*headers, *HEADERS], exc_info)

        path = environ.get("PATH_INFO") or "/"
        if path in access.open:
            return app(environ, start)
        host = environ.get("HTTP_HOST", "")
        if not access.host_allowed(host):
            return refuse(start, 403, f"host {host_name(host)!r} is not served here; start serve with --allowed-hosts")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return refuse(start, 400, "bad Content-Length")
        if length > MAX_BODY:
            return refuse(start, 413, f"request body over {MAX_BODY} bytes")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            origin = environ.get("HTTP_ORIGIN")
            if origin is not None and not same_origin(origin, host):
                return refuse(start, 403, "cross-origin request refused")
            if environ.get("HTTP_SEC_FETCH_SITE", "same-origin") not in ("same-origin", "none"):
                return refuse(start, 403, "cross-site request refused")
        if path not in access.public and not access.authorized(environ.get("HTTP_AUTHORIZATION", "")):
            headers = [("WWW-Authenticate", 'Bearer realm="streamer"')]  # not Basic: no browser dialog
            return refuse(start, 401, "give the token: Authorization: Bearer TOKEN", headers)
        return app(environ, start)

    return wrapped


def same_origin(origin: str, host: str) -> bool:
    """The Origin names this server as the browser reached it (any scheme: TLS may end at a proxy)."""
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc.lower() == host.strip().lower()


def refuse(start_response: Callable, status: int, message: str, headers: list | None = None) -> list[bytes]:
    if headers:
        original = start_response

        def start_response(status_line, response_headers, exc_info=None):
            return original(status_line, [*response_headers, *headers], exc_info)

    return respond_json(start_response, status, {"error": message})
