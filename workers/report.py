"""The training report both trainers write as they go: RUN/report.html with its pictures, the run's config
and metrics as JSON and CSV, and TensorBoard logs.

After every epoch `TrainingReport.epoch(history, grid)` rewrites, in the run folder:

- `loss.png`: training and validation loss per epoch; `losses.png`: each loss component (Mask R-CNN),
  training solid and validation dashed; `metrics.png`: the other metrics (e.g. IoU); `learning_rate.png`;
- `predictions/epoch_NNNN.png`: the model's predictions on the same fixed validation images after that epoch;
- `config.json`, `metrics.json`, `metrics.csv`; `tensorboard/` (tf.summary scalars and the prediction grid);
- `report.html`, which shows them.

Plots use matplotlib (the `plots` extra) on the Agg backend; every file is published whole.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from workers.training import publish

log = logging.getLogger(__name__)

REPORT = "report.html"
PREDICTIONS = "predictions"
PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240]],
    np.uint8,
)


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    try:
        import matplotlib
    except ImportError:
        from streamer.errors import StreamerError

        raise StreamerError("plots need matplotlib: pip install 'streamer[plots]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def overlay(image: np.ndarray, masks: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """`image` (RGB uint8) with each mask of `masks` (bool H×W×N, or H×W) tinted in its own colour."""
    out = np.asarray(image, np.float32).copy()
    masks = np.asarray(masks, bool)
    if masks.ndim == 2:
        masks = masks[:, :, None]
    for i in range(masks.shape[-1]):
        colour = PALETTE[i % len(PALETTE)].astype(np.float32)
        out[masks[:, :, i]] = out[masks[:, :, i]] * (1 - alpha) + colour * alpha
    return out.astype(np.uint8)


def save_figure(figure, path: Path) -> Path:
    """Write a matplotlib figure as PNG at `path` (published whole) and close it."""
    plt = pyplot()
    with publish(path) as tmp:
        figure.savefig(tmp, format="png", dpi=80, bbox_inches="tight", pad_inches=0.1)
    plt.close(figure)
    return path


def image_grid(rows: Sequence[Sequence[np.ndarray]], columns: Sequence[str], title: str = ""):
    """A figure of images: one row per sample, one column per kind (e.g. image, truth, prediction)."""
    plt = pyplot()
    count = max(1, len(rows))
    first = np.asarray(rows[0][0]) if rows and rows[0] else np.zeros((1, 1))
    aspect = first.shape[0] / max(1, first.shape[1])
    size = (2.4 * len(columns), 2.4 * aspect * count + 0.3 * count + 0.4)
    figure, axes = plt.subplots(count, len(columns), figsize=size, squeeze=False)
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            axis = axes[r][c]
            axis.imshow(picture, cmap="gray" if np.asarray(picture).ndim == 2 else None, vmin=0, vmax=255)
            axis.set_xticks([])
            axis.set_yticks([])
            if r == 0:
                axis.set_title(columns[c], fontsize=9)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


class TrainingReport:
    """The report of the training run in `out`; `config` is the run's config as a dict."""

    def __init__(self, out: str | Path, title: str, config: dict, tensorboard: bool = True) -> None:
        self.out = Path(out)
        self.title = title
        self.config = config
        self.tensorboard = tensorboard
        self._writers = None
        with publish(self.out / "config.json") as tmp:
            tmp.write_text(json.dumps(config, indent=2, default=str))

    def epoch(self, history: list[dict], grid: tuple[list[list[np.ndarray]], list[str]] | None = None) -> None:
        """After an epoch: `history` is every epoch so far (dicts with "epoch" and the metrics); `grid` the
        (rows, column titles) of the predictions on the fixed validation images after this epoch."""
        if not history:
            return
        epoch = int(history[-1]["epoch"])
        self._metrics(history)
        pictures = self._plots(history)
        if grid is not None and grid[0]:
            figure = image_grid(grid[0], grid[1], f"epoch {epoch}")
            save_figure(figure, self.out / PREDICTIONS / f"epoch_{epoch:04d}.png")
        self._tensorboard(history[-1], grid)
        self._html(history, pictures)

    def _metrics(self, history: list[dict]) -> None:
        with publish(self.out / "metrics.json") as tmp:
            tmp.write_text(json.dumps(history, indent=2))
        keys: list[str] = []
        for row in history:
            keys += [k for k in row if k not in keys]
        with publish(self.out / "metrics.csv") as tmp, open(tmp, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=keys)
            writer.writeheader()
            writer.writerows(history)

    def _plots(self, history: list[dict]) -> list[tuple[str, str]]:
        """(file name, caption) of each plot written."""
        keys = sorted({k for row in history for k in row if k not in ("epoch", "seconds")})
        components = [k for k in keys if k.endswith("_loss") and k != "val_loss" and not k.startswith("val_")]
        others = [k for k in keys if not k.endswith("loss") and k not in ("lr", "learning_rate")]
        others = [k for k in others if not k.startswith("val_")]
        rate = next((k for k in ("learning_rate", "lr") if k in keys), None)
        written = []
        plots = [
            ("loss.png", "Loss per epoch: training (solid) and validation (dashed)", ["loss"]),
            ("losses.png", "Each loss component: training (solid) and validation (dashed)", components),
            ("metrics.png", "Metrics per epoch: training (solid) and validation (dashed)", others),
        ]
        for name, caption, series in plots:
            if series and self._plot(history, series, name, caption.split(":")[0], log_scale=name != "metrics.png"):
                written.append((name, caption))
        if rate and self._plot(history, [rate], "learning_rate.png", "Learning rate", validation=False):
            written.append(("learning_rate.png", "Learning rate at the end of each epoch"))
        return written

    def _plot(self, history, series, name, title, validation=True, log_scale=False) -> bool:
        plt = pyplot()
        figure, axis = plt.subplots(figsize=(6.4, 3.6))
        drawn = False
        for i, key in enumerate(series):
            colour = f"C{i % 10}"
            for prefix, style in (("", "-"), ("val_", "--")) if validation else (("", "-"),):
                points = [(row["epoch"], row[prefix + key]) for row in history if row.get(prefix + key) is not None]
                if points:
                    x, y = zip(*points)
                    axis.plot(x, y, style, color=colour, marker="o", markersize=3, label=prefix + key)
                    drawn = True
        if not drawn:
            plt.close(figure)
            return False
        if log_scale and all(row.get(k, 1) > 0 for row in history for k in series):
            axis.set_yscale("log")
        from matplotlib.ticker import MaxNLocator

        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        figure.tight_layout()
        save_figure(figure, self.out / name)
        return True

    def _tensorboard(self, row: dict, grid) -> None:
        if not self.tensorboard:
            return
        try:
            import tensorflow as tf

            if self._writers is None:
                self._writers = {
                    "": tf.summary.create_file_writer(str(self.out / "tensorboard" / "train")),
                    "val_": tf.summary.create_file_writer(str(self.out / "tensorboard" / "validation")),
                }
            step = int(row["epoch"])
            for prefix, writer in self._writers.items():
                with writer.as_default(step=step):
                    for key, value in row.items():
                        if key in ("epoch", "seconds") or not isinstance(value, int | float):
                            continue
                        if prefix and not key.startswith(prefix):
                            continue
                        if not prefix and key.startswith("val_"):
                            continue
                        tf.summary.scalar(key[len(prefix) :], float(value))
                writer.flush()
            picture = self.out / PREDICTIONS / f"epoch_{step:04d}.png"
            if grid is not None and picture.exists():
                image = tf.image.decode_png(picture.read_bytes(), channels=3)[None]
                with self._writers["val_"].as_default(step=step):
                    tf.summary.image("predictions", image)
                self._writers["val_"].flush()
        except Exception as error:  # TensorBoard logs are a convenience: never the reason a run fails
            log.warning("tensorboard logs not written: %s", error)
            self.tensorboard = False

    def _html(self, history: list[dict], pictures: list[tuple[str, str]]) -> None:
        grids = sorted((self.out / PREDICTIONS).glob("epoch_*.png")) if (self.out / PREDICTIONS).is_dir() else []
        keys: list[str] = []
        for row in history:
            keys += [k for k in row if k not in keys]
        table = io.StringIO()
        table.write("<table><tr>" + "".join(f"<th>{html.escape(k)}</th>" for k in keys) + "</tr>")
        for row in history:
            cells = "".join(f"<td>{_cell(row.get(k))}</td>" for k in keys)
            table.write(f"<tr>{cells}</tr>")
        table.write("</table>")
        figures = "".join(
            f'<figure><img src="{name}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}'
            "</figcaption></figure>"
            for name, caption in pictures
        )
        latest = ""
        if grids:
            newest = grids[-1]
            latest = (
                f'<figure><img src="{PREDICTIONS}/{newest.name}" alt="predictions">'
                f"<figcaption>Predictions on the fixed validation images after epoch {int(newest.stem[6:])}: "
                "the image, the ground truth and the prediction</figcaption></figure>"
            )
            earlier = "".join(
                f'<li><a href="{PREDICTIONS}/{g.name}">epoch {int(g.stem[6:])}</a></li>' for g in grids[:-1]
            )
            if earlier:
                latest += f"<p>Earlier epochs:</p><ul>{earlier}</ul>"
        config = html.escape(json.dumps(self.config, indent=2, default=str))
        page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:1100px}}figure{{display:inline-block;margin:.5em}}
img{{max-width:100%}}figcaption{{font-size:.9em;color:#444}}table{{border-collapse:collapse;font-size:.85em}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}pre{{background:#f4f4f4;padding:.5em}}</style>
</head><body>
<h1>{html.escape(self.title)}</h1>
<p>{len(history)} epoch(s) recorded; last: epoch {history[-1]["epoch"]}. Metrics also in
<a href="metrics.csv">metrics.csv</a> and <a href="metrics.json">metrics.json</a>; TensorBoard logs in
<code>tensorboard/</code> (<code>tensorboard --logdir {html.escape(str(self.out / "tensorboard"))}</code>).</p>
<h2>Curves</h2>
{figures}
<h2>Predictions</h2>
{latest or "<p>No validation images.</p>"}
<h2>Metrics</h2>
{table.getvalue()}
<h2>Config</h2>
<pre>{config}</pre>
</body></html>
"""
        with publish(self.out / REPORT) as tmp:
            tmp.write_text(page)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape("" if value is None else str(value))


def read_input(path: str | Path, frame: int = 0) -> np.ndarray:
    """An RGB uint8 image: the image file at `path`, or frame `frame` (0-based) of the video at `path`."""
    import cv2

    from streamer.errors import StreamerError

    path = Path(path)
    if not path.is_file():
        raise StreamerError(f"{path}: no such file; give an image or a video")
    if frame < 0:
        raise StreamerError(f"--frame {frame}: give a frame index ≥ 0")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.suffix.lower() in IMAGE_SUFFIXES else None
    if image is not None:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    import av

    try:
        with av.open(str(path), timeout=30.0) as container:
            for index, decoded in enumerate(container.decode(video=0)):
                if index == frame:
                    return decoded.to_ndarray(format="rgb24")
    except (av.FFmpegError, OSError) as error:
        raise StreamerError(f"{path}: neither an image nor a readable video ({error})") from None
    raise StreamerError(f"{path}: has no frame {frame}; give a smaller --frame")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class PictureSet:
    """Pictures written into `out` with their captions; `finish(title, extra)` writes index.html and index.json."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.pictures: list[dict] = []

    def figure(self, figure, name: str, caption: str) -> Path:
        path = save_figure(figure, self.out / name)
        self.pictures.append({"file": name, "caption": caption})
        return path

    def finish(self, title: str, extra: dict | None = None) -> Path:
        entries = "".join(
            f'<figure><img src="{html.escape(p["file"])}" alt="{html.escape(p["caption"])}">'
            f"<figcaption><b>{html.escape(p['file'])}</b>: {html.escape(p['caption'])}</figcaption></figure>"
            for p in self.pictures
        )
        page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:1200px}}figure{{margin:1em 0}}img{{max-width:100%}}
figcaption{{color:#333}}</style></head><body>
<h1>{html.escape(title)}</h1>
{entries}
</body></html>
"""
        with publish(self.out / "index.json") as tmp:
            tmp.write_text(json.dumps({"title": title, "pictures": self.pictures, **(extra or {})}, indent=2))
        with publish(self.out / "index.html") as tmp:
            tmp.write_text(page)
        return self.out / "index.html"


def channel_picture(activation: np.ndarray) -> np.ndarray:
    """An H×W×C activation as one grey picture: the mean absolute activation, scaled to 0..255."""
    picture = np.abs(np.asarray(activation, np.float32)).mean(axis=-1)
    low, high = float(picture.min()), float(picture.max())
    return ((picture - low) / (high - low + 1e-9) * 255).astype(np.uint8)
