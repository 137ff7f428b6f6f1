"""Model files in the common formats and the runtimes that run them (semantic segmentation models)."""
