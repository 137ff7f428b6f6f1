import pytest
from s3_fixtures import S3Server


@pytest.fixture
def s3():
    """An s3fs file system on a fresh S3-protocol server with a `videos` bucket; `s3.storage` holds the
    fsspec options streamer takes for it."""
    with S3Server() as fs:
        yield fs
