"""Redis Streams between the stages: messages, jobs and keys shared by producers and workers."""
