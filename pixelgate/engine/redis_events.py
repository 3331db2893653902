"""Job events across processes through Redis pub/sub.

Every process publishes to Redis and listens on one pattern subscription; what arrives is
handed to the subscribers of this process, like the in-process bus does. When Redis is away,
events still reach this process's own subscribers, and the SSE stream fills any gap from the
database, which records every state change.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import redis

from pixelgate.engine.events import EventBus, JobEventMessage

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "pixelgate:events:"


class RedisEventBus(EventBus):
    def __init__(self, url: str) -> None:
        super().__init__()
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._url = url
        self._stopping = threading.Event()
        self._listener = threading.Thread(
            target=self._listen, name="pixelgate-redis-events", daemon=True
        )

    def start(self) -> None:
        self._listener.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._listener.is_alive():
            self._listener.join(5)
        self._redis.close()

    def publish(self, event: JobEventMessage) -> None:
        payload = json.dumps(
            {"job_id": event.job_id, "type": event.type, "data": event.data, "id": event.id}
        )
        try:
            self._redis.publish(CHANNEL_PREFIX + event.job_id, payload)
        except redis.RedisError as exc:
            log.warning("event not published to Redis (%s); delivering locally", exc)
            self.deliver_locally(event)

    def deliver_locally(self, event: JobEventMessage) -> None:
        super().publish(event)

    def ping(self) -> bool:
        return bool(self._redis.ping())

    def _listen(self) -> None:
        """Receive every job's events, reconnecting with backoff while Redis is away."""
        delay = 0.2
        while not self._stopping.is_set():
            listener = redis.Redis.from_url(self._url, socket_connect_timeout=5)
            pubsub = listener.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.psubscribe(CHANNEL_PREFIX + "*")
                delay = 0.2
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "pmessage":
                        self.deliver_locally(_decode(message["data"]))
            except redis.RedisError as exc:
                log.warning("Redis event listener lost its connection (%s); retrying", exc)
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)
            finally:
                pubsub.close()
                listener.close()


def _decode(raw: Any) -> JobEventMessage:
    body = json.loads(raw)
    return JobEventMessage(body["job_id"], body["type"], body["data"], body["id"])
