"""A whole cluster on loopback: PostgreSQL, Redis, S3, two API replicas, two workers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from cryptography.fernet import Fernet
from moto.server import ThreadedMotoServer

from tests.cluster.services import (
    PostgresDatabase,
    RedisServer,
    TcpProxy,
    WorkerProcess,
    wait_for_workers,
)
from tests.conftest import ADMIN_KEY, Server, free_port

BUCKET = "pixelgate-test"


@dataclass
class Cluster:
    database: PostgresDatabase
    redis: RedisServer
    s3_url: str
    env: dict[str, str]
    root: Path
    models_dir: Path
    replicas: list[Server] = field(default_factory=list)
    workers: list[WorkerProcess] = field(default_factory=list)

    def add_replica(self, **env: str) -> Server:
        server = Server(
            self.root / f"api-{len(self.replicas)}", self.models_dir, **{**self.env, **env}
        )
        self.replicas.append(server.start())
        return server

    def add_worker(self) -> WorkerProcess:
        env = {**os.environ, **self.env, "PIXELGATE_DATA_DIR": str(self.root / "worker")}
        worker = WorkerProcess(env, "local/tiny", self.root / f"worker-{len(self.workers)}.log")
        self.workers.append(worker.start())
        return worker

    def ensure_workers(self, count: int = 2) -> None:
        for worker in self.workers:
            if not worker.alive:
                worker.start()
        while len(self.workers) < count:
            self.add_worker()
        wait_for_workers(self.replicas[0].url, ADMIN_KEY, count)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    database = PostgresDatabase().create()
    redis = RedisServer(root / "redis").start()
    s3_port = free_port()
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port)
    s3.start()
    s3_url = f"http://127.0.0.1:{s3_port}"
    credentials = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    boto3.client("s3", endpoint_url=s3_url, **_boto(credentials)).create_bucket(Bucket=BUCKET)
    env = {
        **credentials,
        "PIXELGATE_DATABASE_URL": database.url(),
        "PIXELGATE_BROKER_URL": f"{redis.url}/0",
        "PIXELGATE_REDIS_URL": f"{redis.url}/1",
        "PIXELGATE_STORAGE_URL": f"s3://{BUCKET}/results",
        "PIXELGATE_S3_ENDPOINT_URL": s3_url,
        "PIXELGATE_SECRET_KEY": "cluster-test-secret-0123456789",
        # tenants' own provider keys and webhook secrets: the same Fernet key everywhere
        "PIXELGATE_PROVIDER_KEYS_SECRET": Fernet.generate_key().decode(),
        "PIXELGATE_MODELS_DIR": str(models_dir),
        "PIXELGATE_LEASE_SECONDS": "3",
        "PIXELGATE_REQUEUE_AFTER_SECONDS": "3",
        "PIXELGATE_WORKER_HEARTBEAT_SECONDS": "1",
        "PIXELGATE_TORCH_THREADS": "1",
        # webhooks to the tests' receivers on loopback, retried quickly
        "PIXELGATE_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "PIXELGATE_WEBHOOK_BACKOFF_SECONDS": "0.2",
    }
    cluster = Cluster(database, redis, s3_url, env, root, models_dir)
    try:
        cluster.add_replica()
        cluster.add_replica()
        cluster.ensure_workers(2)
        yield cluster
    finally:
        for worker in cluster.workers:
            worker.stop()
        for replica in cluster.replicas:
            replica.stop()
        redis.stop()
        s3.stop()
        database.drop()


def _boto(credentials: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": credentials["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": credentials["AWS_SECRET_ACCESS_KEY"],
        "region_name": credentials["AWS_DEFAULT_REGION"],
    }


@pytest.fixture
def db_proxy(cluster: Cluster) -> Iterator[TcpProxy]:
    proxy = TcpProxy(cluster.database.port)
    proxy.restore()
    yield proxy
    proxy.cut()
