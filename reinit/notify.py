"""The only place that touches MNS: publish one JSON message to the topic, with its tag."""

from __future__ import annotations

import json
import threading

from reinit.ecs import Credentials

MAX_MESSAGE_BYTES = 65536


class PublishError(Exception):
    def __init__(self, code: str, message: str, retryable: bool):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.retryable = code, message, retryable


def encode(body: dict) -> str:
    return json.dumps(body, ensure_ascii=True, separators=(",", ":"), sort_keys=False)


class Publisher:
    """One MNS topic. The SDK keeps one HTTP connection per client, so calls are serialised."""

    def __init__(self, endpoint: str, topic: str, credentials: Credentials):
        from mns.account import Account

        account = Account(endpoint.rstrip("/"), credentials.access_key_id, credentials.access_key_secret,
                          credentials.security_token or "")
        self.topic_name = topic
        self._topic = account.get_topic(topic)
        self._lock = threading.Lock()

    def publish(self, body: dict, tag: str) -> str:
        from mns.mns_exception import MNSClientNetworkException, MNSExceptionBase, MNSServerException
        from mns.topic import TopicMessage

        text = encode(body)
        try:
            with self._lock:
                return self._topic.publish_message(TopicMessage(text, tag)).message_id
        except MNSServerException as err:
            retryable = err.type in ("InternalError", "ServiceUnavailable", "QpsLimitExceeded") or err.type.startswith("Throttling")
            raise PublishError(err.type, err.message, retryable) from None
        except MNSClientNetworkException as err:
            raise PublishError("NetworkError", err.message[:300], True) from None
        except MNSExceptionBase as err:
            raise PublishError(err.type, err.message[:300], False) from None
