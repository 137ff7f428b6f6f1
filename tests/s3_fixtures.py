"""A real S3-protocol server (moto's server mode) on a free loopback port, with a `videos` bucket."""

from __future__ import annotations

import subprocess
import sys
import time

import boto3
import botocore.exceptions
import s3fs
from redis_fixtures import free_port

BUCKET = "videos"


class S3Server:
    """`with S3Server() as fs:` an s3fs file system on a fresh server; `fs.endpoint` is its URL."""

    def __enter__(self) -> s3fs.S3FileSystem:
        port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.endpoint = f"http://127.0.0.1:{port}"
        self.storage = {
            "key": "test",
            "secret": "test",
            "client_kwargs": {"endpoint_url": self.endpoint, "region_name": "us-east-1"},
        }
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )
        deadline = time.time() + 20
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except botocore.exceptions.EndpointConnectionError:
                if time.time() > deadline:
                    self.process.kill()
                    raise
                time.sleep(0.2)
        fs = s3fs.S3FileSystem(**self.storage)
        fs.endpoint = self.endpoint
        fs.storage = self.storage  # the fsspec options streamer takes for this server
        return fs

    def __exit__(self, *error) -> None:
        self.process.kill()
        self.process.wait()
