"""Model settings files (`--config FILE`): JSON, YAML, or the `KEY value` listing a matterport user has.

matterport's `config.display()` prints one setting a line, `NAME<spaces>value`, with values as Python prints
them: numbers, `True`, `None`, lists `[4, 8, 16]`, tuples `(56, 56)`, dicts, and NumPy arrays without commas
(`[123.7 116.8 103.9]`, wrapped onto indented lines when long). `parse_value` reads such a value as numbers;
a value that is none of these (`resnet101`, `square`) stays a string.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from streamer.errors import StreamerError

MAX_BYTES = 1_000_000
_KEY_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\s*[:=]\s*|\s+)(\S.*)")
_SKIPPED = re.compile(r"(configurations?:?|\.+|-+)", re.IGNORECASE)  # display()'s header, an elision, a rule


def read_settings_file(path: str) -> dict:
    """{KEY: value} from a JSON or YAML mapping, or from a `KEY value` listing (matterport's config.display())."""
    file = Path(path)
    what = "give a JSON or YAML file of KEY: value settings, or the listing of matterport's config.display()"
    if not file.is_file():
        raise StreamerError(f"--config {path}: no such file; {what}")
    if file.stat().st_size > MAX_BYTES:
        raise StreamerError(f"--config {path}: larger than 1 MB; {what}")
    text = file.read_text(errors="replace")
    suffix = file.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text)
        elif suffix == ".json" or text.lstrip().startswith(("{", "[")):
            values = json.loads(text)
        else:
            values = None
    except Exception as error:  # yaml.YAMLError, json.JSONDecodeError
        raise StreamerError(f"--config {path}: cannot parse it ({str(error).splitlines()[0]})") from None
    if values is None or (isinstance(values, str) and suffix in (".yaml", ".yml")):
        values = listing(text, path)  # YAML reads a KEY value listing as one long string
    if not isinstance(values, dict):
        raise StreamerError(f"--config {path}: must hold a mapping of KEY: value settings")
    return {str(key): value for key, value in values.items()}


def listing(text: str, path: str = "--config") -> dict:
    """{KEY: value} of `KEY value` lines (values read by parse_value); indented lines that are not `KEY value`
    continue the value above (NumPy wraps long arrays so)."""
    raw: dict[str, str] = {}
    key = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or _SKIPPED.fullmatch(stripped):
            continue
        match = _KEY_LINE.fullmatch(stripped)
        if match and (key is None or not line[:1].isspace() or not _continues(raw[key])):
            key = match.group(1)
            raw[key] = match.group(2).strip()
        elif key is not None and _continues(raw[key]):
            raw[key] += " " + stripped
        else:
            raise StreamerError(
                f"--config {path}: line {number} ({stripped[:60]!r}) is not KEY value; give one setting a line, "
                "e.g. IMAGE_MAX_DIM 512, or a JSON or YAML mapping"
            )
    if not raw:
        raise StreamerError(f"--config {path}: no settings in it; give one KEY value a line, e.g. IMAGE_MAX_DIM 512")
    return {name: parse_value(value) for name, value in raw.items()}


def _continues(value: str) -> bool:
    """A value whose brackets are still open (a NumPy array wrapped onto the next line)."""
    return value.count("[") > value.count("]") or value.count("(") > value.count(")")


def parse_value(text: str):
    """A printed value as Python reads it: a number, bool, None, list, tuple or dict (Python's literals), a
    NumPy array printed without commas (`[123.7 116.8 103.9]`, `[1024 1024    3]`) as a list of numbers;
    anything else is the string itself."""
    text = text.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    numbers = _numpy_array(text)
    return text if numbers is None else numbers


def _numpy_array(text: str):
    """`[1 2 3]`, `[[1 2] [3 4]]` or `(1 2)` as nested lists of numbers; None if it is not one."""
    if not text or text[0] not in "[(" or text[-1] not in "])":
        return None
    commas = re.sub(r"(?<=[0-9.\]])\s+(?=[-+0-9.\[])", ", ", text.strip())
    try:
        value = ast.literal_eval(commas.replace("(", "[").replace(")", "]"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, list) and _numeric(value) else None


def _numeric(value) -> bool:
    if isinstance(value, list):
        return all(_numeric(item) for item in value)
    return isinstance(value, int | float) and not isinstance(value, bool)
