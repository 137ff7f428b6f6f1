"""streamer: video segmentation service (decode → model → effect → encode)."""

__version__ = "0.1.0"
