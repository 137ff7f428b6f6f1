"""The model packages (workers.unet, workers.maskrcnn, workers.identity) and the worker process (workers.loop).

Models are found by name through streamer.models' registry of import paths."""
