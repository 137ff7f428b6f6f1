"""The status page served by `streamer serve`."""
