"""Publishes into a wsway app's topics through its Redis (one server, not a
cluster), from any Python process. The wire format: docs/redis-wire.md."""
import json, os, redis

class Emitter:
    def __init__(self, url, prefix="wsway:", history=None):
        self.redis, self.prefix = redis.Redis.from_url(url), prefix
        self.history = history or {}  # as App::history: {"room:*": (max_messages, max_age_ms)}
        self.sender, self.script = b"\x01" + os.urandom(16), None  # frame version, node id

    def publish(self, topic, message):
        """Text (str) or binary (bytes); returns "epoch:offset" where history is kept."""
        text = isinstance(message, str)
        payload = message.encode() if text else message
        keep = next((r for p, r in self.history.items() if topic == p
                     or (p.endswith("*") and topic.startswith(p[:-1]))), None)
        if keep is None:
            self.redis.publish(self.prefix + topic, self.sender + (b"\0" if text else b"\1") + payload)
            return None
        if self.script is None:  # the text of the script the nodes run, which they keep here
            source = self.redis.get(self.prefix + "publish-script")
            if source is None:
                raise RuntimeError("no wsway node has connected to this Redis yet")
            self.script = self.redis.register_script(source)
        keys = [f"{self.prefix}history-meta:{topic}", f"{self.prefix}history:{topic}"]
        epoch = "%x" % (int.from_bytes(os.urandom(8), "big") | 1)  # used if the topic has none
        header = self.sender + (b"\3" if text else b"\4") + bytes(8)  # 8 bytes: no connection skipped
        e, s = self.script(keys, [epoch, 86_400_000, self.prefix + topic, header, payload,
                                  "t" if text else "b", keep[0], keep[1]])
        return f"{e.decode()}:{s}"

    def emit(self, topic, event, data=None):
        return self.publish(topic, json.dumps({"event": event, "data": data}, separators=(",", ":")))
