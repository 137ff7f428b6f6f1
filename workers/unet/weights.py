"""Weight files: the bundled demo model (`DEMO_WEIGHTS`) and reading `.keras` model files written by our
trainer, with user-facing errors for anything else.

Files are loaded in Keras safe mode (no arbitrary code from lambdas), and the model must map an
RGB image batch to a same-sized per-pixel probability map.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from types import SimpleNamespace

from streamer.errors import StreamerError

HINT = "train one with `streamer train unet` or pass a .keras file saved by it"
# The bundled demo road model (a small U-Net trained on synthetic roads; see weights/MODEL_CARD.md).
DEMO_WEIGHTS = Path(__file__).resolve().parent / "weights" / "road-demo.keras"
# What a user is told when the demo weights run: they explain garbage on real footage.
DEMO_NOTE = (
    "unet: the bundled demo weights, trained only on synthetic roads (streamer sample road): on real footage they "
    "find no road. Pass your own with --weights FILE (.keras from streamer train unet --data kitti:DIR, or any "
    "segmentation model file)"
)


def load_keras_model(path: str | Path, compile: bool = False):
    """Load and validate a segmentation model from a `.keras` file; StreamerError names what did not match."""
    path = Path(path)
    _check_archive(path)
    import keras

    try:
        model = keras.saving.load_model(path, compile=compile)
    except Exception as error:  # any failure here means the file is not usable
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        raise StreamerError(f"weights file {path}: Keras could not load it ({reason}); {HINT}") from error
    check_segmentation_model(model, path)
    return model


def check_segmentation_model(model, path: str | Path) -> None:
    """The model must take (batch, H, W, 3) and every output must be (batch, H, W, classes)."""
    import keras

    if not isinstance(model, keras.Model) or len(model.inputs) != 1:
        raise StreamerError(
            f"weights file {path}: expected a Keras model with one image input; got {type(model).__name__}; {HINT}"
        )
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3 or None in shape[1:3]:
        raise StreamerError(
            f"weights file {path}: expected an input of shape (batch, height, width, 3); got {shape}; {HINT}"
        )
    for output in model.outputs:
        got = tuple(output.shape)
        if len(got) != 4 or got[1:3] != shape[1:3] or not got[3]:
            raise StreamerError(
                f"weights file {path}: output is not a segmentation map: expected (batch, {shape[1]}, {shape[2]}, "
                f"classes) matching the input; got {got}; {HINT}"
            )


def _check_archive(path: Path) -> None:
    """Cheap checks before TensorFlow: the file exists and is a Keras v3 zip archive."""
    if not path.exists():
        raise StreamerError(f"weights file {path}: not found; {HINT}")
    if not path.is_file():
        raise StreamerError(f"weights file {path}: is a directory, expected a .keras file; {HINT}")
    if path.suffix != ".keras":
        raise StreamerError(f"weights file {path}: expected a .keras file, got {path.suffix or 'no extension'}; {HINT}")
    if not zipfile.is_zipfile(path):
        raise StreamerError(f"weights file {path}: not a Keras archive (expected a zip with config.json); {HINT}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as error:
        raise StreamerError(f"weights file {path}: unreadable archive ({error}); {HINT}") from error
    missing = {"config.json", "model.weights.h5"} - names
    if missing:
        raise StreamerError(f"weights file {path}: Keras archive is missing {', '.join(sorted(missing))}; {HINT}")


def saved_settings(path) -> SimpleNamespace:
    """What a model file says of its classes before it loads (`class_names`, background first): the road demo's
    names; None for other files, whose names (metadata, --class-names) are known when they load."""
    from workers.unet.config import ROAD_CLASSES

    return SimpleNamespace(class_names=ROAD_CLASSES if Path(path).resolve() == DEMO_WEIGHTS else None)
