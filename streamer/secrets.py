"""Keep secrets out of anything shown: errors, logs, status, the web API.

`redact` masks the password in the userinfo of every URL inside a text (``rtsp://admin:***@cam``,
``redis://:***@host``) and the values of query parameters that commonly carry credentials
(``?token=***``, ``X-Amz-Signature=***``). `redact_record` applies it to every string inside a record
(dicts, lists, tuples), so a job record or a status line can be shown as is.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

# Query/fragment parameter names whose values are credentials (compared case-insensitively).
SECRET_PARAMS = frozenset(
    name.lower()
    for name in (
        "password",
        "passwd",
        "pass",
        "pwd",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "auth",
        "auth_token",
        "authorization",
        "secret",
        "client_secret",
        "key",
        "api_key",
        "apikey",
        "access_key",
        "secret_key",
        "private_key",
        "signature",
        "sig",
        "credential",
        "credentials",
        "session",
        "sessionid",
        "session_token",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "X-Goog-Signature",
        "X-Goog-Credential",
    )
)

# scheme://user:password@  — the password is everything up to the last '@' before the host part.
_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^\s/?#@:\"'<>]*):(?P<password>[^\s/?#\"'<>]*)@"
)
# scheme://token@host (a bare secret in the user part, e.g. https://ghp_xxx@github.com) is left alone:
# it cannot be told from a user name.
_PARAM = re.compile(r"(?P<sep>[?&;#])(?P<name>[A-Za-z0-9_.\-]+)=(?P<value>[^&;#\s\"'<>]*)")


def _mask_param(match: re.Match[str]) -> str:
    if match.group("name").lower() in SECRET_PARAMS and match.group("value"):
        return f"{match.group('sep')}{match.group('name')}={MASK}"
    return match.group(0)


def _mask_userinfo(match: re.Match[str]) -> str:
    if not match.group("password"):
        return match.group(0)
    return f"{match.group('head')}{match.group('user')}:{MASK}@"


def redact(text: Any) -> str:
    """`text` with every URL password and secret query parameter replaced by ``***``."""
    text = "" if text is None else str(text)
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(_mask_userinfo, text)
    if "=" in text:
        text = _PARAM.sub(_mask_param, text)
    return text


def redact_record(record: Any) -> Any:
    """A copy of `record` (dict/list/tuple/str, nested) with `redact` applied to every string in it.

    Values under a key that itself names a secret (``{"password": "x"}``) are masked whole.
    """
    if isinstance(record, dict):
        out = {}
        for key, value in record.items():
            if isinstance(key, str) and key.lower() in SECRET_PARAMS and isinstance(value, str) and value:
                out[key] = MASK
            else:
                out[key] = redact_record(value)
        return out
    if isinstance(record, list):
        return [redact_record(item) for item in record]
    if isinstance(record, tuple):
        return tuple(redact_record(item) for item in record)
    if isinstance(record, bytes):
        try:
            return redact(record.decode())
        except UnicodeDecodeError:
            return record
    if isinstance(record, str):
        return redact(record)
    return record


class RedactingFilter(logging.Filter):
    """A logging filter that redacts a record's message, arguments and exception text in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            # formatters reuse exc_text; dropping exc_info keeps them from formatting the raw traceback again
            record.exc_text = redact(record.exc_text)
            record.exc_info = None
        for name, value in list(vars(record).items()):
            if name in _STANDARD_ATTRS or not isinstance(value, (str, dict, list, tuple)):
                continue
            setattr(record, name, redact_record(value))
        return True


_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def install_log_filter() -> RedactingFilter:
    """Redact every log record that reaches a handler of the root logger (idempotent).

    Logger filters do not see records propagated from child loggers, so the filter goes on the handlers.
    """
    root = logging.getLogger()
    found = RedactingFilter()
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(found)
    return found
