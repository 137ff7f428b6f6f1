"""Transports carry frames from the source to the render stage and rendered frames back to the muxer.

memory: every stage in this process (the embedded default). redis: Redis Streams to workers
on any machine. Both implement `streamer.protocols.Transport`.
"""
