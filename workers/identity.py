"""A model that finds nothing: measures the pipeline's own I/O ceiling."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamer.models import ModelPackage

if TYPE_CHECKING:  # read for the registry where no frame is (submit): without NumPy
    import numpy as np

    from streamer.prediction import Prediction

PACKAGE = ModelPackage(name="identity", loader="workers.identity:load")


class IdentityModel:
    name = "identity"
    reads_pixels = False  # only the frames' size: the render stage hands it no converted pixels

    def predict(self, frames: np.ndarray) -> list[Prediction]:
        import numpy as np

        from streamer.prediction import Prediction

        empty = np.zeros(frames.shape[1:3], dtype=np.uint8)
        return [Prediction(semantic=empty) for _ in range(len(frames))]


def load(config) -> IdentityModel:
    return IdentityModel()
