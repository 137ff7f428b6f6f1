"""streamer: video segmentation service (decode → model → effect → encode).

The Python API (`streamer.process`, `streamer.frames`, `streamer.load_model`) is loaded on first use, so
`import streamer` stays cheap: nothing heavy, and no TensorFlow until a model is loaded.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from streamer.api import Frame, Model, Prediction, ProcessResult, Rendered, frames, load_model, process
    from streamer.errors import StreamerError

__all__ = [
    "Frame",
    "Model",
    "Prediction",
    "ProcessResult",
    "Rendered",
    "StreamerError",
    "frames",
    "load_model",
    "process",
]


def __getattr__(name: str) -> Any:
    if name == "StreamerError":
        from streamer.errors import StreamerError

        return StreamerError
    if name in __all__:
        from streamer import api

        return getattr(api, name)
    raise AttributeError(f"module 'streamer' has no attribute {name!r}")


class _Package(types.ModuleType):
    """The package module: importing the submodule `streamer.frames` (the Frame records) does not hide the
    API function `streamer.frames` (the submodule stays importable by name, as `from streamer.frames import
    Frame`)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "frames" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
