"""Models and the worker loop; models are found by name in workers.registry."""
