"""MNS state: topics and the messages published to them."""

from __future__ import annotations

import hashlib
import threading
import uuid

from emulator.mns import exceptions as exc

MAX_MESSAGE_BYTES = 65536


class MnsBackend:
    def __init__(self, topics=()):
        self.topics: dict[str, list[dict]] = {name: [] for name in topics}
        self.lock = threading.Lock()

    def get_topic(self, name: str) -> list[dict]:
        topic = self.topics.get(name)
        if topic is None:
            raise exc.TopicNotExist()
        return topic

    def publish(self, topic_name: str, body: str, tag: str | None) -> dict:
        raw = body.encode("utf-8")
        if not 1 <= len(raw) <= MAX_MESSAGE_BYTES:
            raise exc.InvalidArgument()
        message = {
            "MessageId": uuid.uuid4().hex.upper(),
            "MessageBodyMD5": hashlib.md5(raw).hexdigest().upper(),
            "MessageBody": body,
            "MessageTag": tag,
        }
        with self.lock:
            self.get_topic(topic_name).append(message)
        return message

    def messages(self, topic_name: str) -> list[dict]:
        with self.lock:
            return list(self.get_topic(topic_name))
