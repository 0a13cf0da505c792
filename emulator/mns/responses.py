"""The MNS wire: XML in, XML out, as in the PublishMessage reference."""

from __future__ import annotations

import re
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from emulator.mns import exceptions as exc
from emulator.mns.models import MnsBackend

NS = "http://mns.aliyuncs.com/doc/v1/"
TOPIC_MESSAGES = re.compile(r"^/topics/([A-Za-z0-9-]{1,256})/messages$")


def xml(root: str, fields: dict) -> bytes:
    inner = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fields.items())
    return f'<?xml version="1.0" encoding="utf-8"?>\n<{root} xmlns="{NS}">{inner}</{root}>'.encode()


class MnsResponses:
    def __init__(self, backend: MnsBackend):
        self.backend = backend

    def dispatch(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        m = TOPIC_MESSAGES.match(path)
        if not m or method != "POST":
            raise exc.MnsError("Only PublishMessage is emulated.")
        return self.publish_message(m.group(1), body)

    def publish_message(self, topic: str, body: bytes) -> tuple[int, bytes]:
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError as err:
            raise exc.MalformedXML() from err
        values = {el.tag.split("}")[-1]: (el.text or "") for el in root}
        if "MessageBody" not in values:
            raise exc.InvalidArgument("MessageBody is required.")
        msg = self.backend.publish(topic, values["MessageBody"], values.get("MessageTag") or None)
        return 201, xml("Message", {"MessageId": msg["MessageId"], "MessageBodyMD5": msg["MessageBodyMD5"]})
