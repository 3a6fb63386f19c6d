"""Submit a command to runpool and wait for its result, with confluent-kafka.

The shape a Python backend needs, and nothing else:

    client = RunpoolClient("kafka:9092")
    eid = client.submit("session-42", "cd /srv && ls")
    result = client.wait(eid, timeout=300)   # the result object (a dict)
    client.close()

What it gets right, because each was a bug somewhere once:
- partitioner=murmur2_random, like every runpool client: a session's
  requests must all land on one partition whoever produced them
  (confluent-kafka's default, consistent_random, puts them elsewhere).
- The results reader is positioned at the end of every results partition
  *before* the request is sent, so its result cannot slip past.
- isolation.level=read_committed: workers publish results in transactions;
  this reader sees exactly one result per execution id.
- Idempotent producer, and a send that is not acknowledged in time raises
  SendTimeout: the request may still be delivered, so do not resend it
  under a new execution id (resend under the same id: the worker runs an
  execution id at most once).
- The reader uses assign(), never a consumer group subscription, so it
  never joins or disturbs anyone's group, and commits nothing.

Signed requests: a worker started with --signing-keys runs only requests
that carry a valid runpool-signature header (schemas/README.md, "Signed
requests"). Give the client the same key file and it signs each request:

    client = RunpoolClient("kafka:9092", signing_keys="/etc/runpool/keys")

(lines KID:BASE64-KEY, readable by its owner only (or a root-owned 0440
Secret); it signs with the first
key, or signing_kid=). sign() is the whole algorithm, to copy elsewhere.

Run as a program it submits one command and prints the result as JSON:

    python3 runpool_client.py --brokers 127.0.0.1:9092 --session s1 'echo hi'

Exit status: 0 when the result arrived (whatever its status), 1 on a
timeout, 2 on bad arguments or a Kafka error.
"""

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import stat
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

REQUESTS_TOPIC = "runpool.requests"
RESULTS_TOPIC = "runpool.results"
# Results that arrived for other ids this client sent, kept for their own
# wait(); beyond this the oldest is dropped.
PENDING_MAX = 10000


SIGNATURE_HEADER = "runpool-signature"


def sign(key, kid, t, kafka_key, value):
    """The runpool-signature header value for one message:
    t=<t>,kid=<kid>,v1=<lowercase hex HMAC-SHA256(key, b"<t>.<kafka key>.<value>")>.
    key, kafka_key and value are bytes; t is unix seconds (int)."""
    msg = b"%d." % t + kafka_key + b"." + value
    return "t=%d,kid=%s,v1=%s" % (t, kid, hmac.new(key, msg, hashlib.sha256).hexdigest())


def load_signing_keys(path):
    """[(kid, key bytes), ...] from a key file (lines KID:BASE64-KEY; blank
    lines and # comments skipped). Like runpool's own loader it refuses a
    file others may read: it must be yours and 0600/0400, or root's and at
    most 0640 (a Kubernetes Secret)."""
    st = os.stat(path)
    mode = stat.S_IMODE(st.st_mode)
    euid = os.geteuid()
    if st.st_uid == euid and euid != 0:
        bad = mode & (stat.S_IRWXG | stat.S_IRWXO)
    elif st.st_uid == 0:
        bad = mode & (stat.S_IWGRP | stat.S_IXGRP | stat.S_IRWXO)
    else:
        raise ValueError("signing key file %s is owned by uid %d, neither yours nor root"
                         % (path, st.st_uid))
    if bad:
        raise ValueError("signing key file %s is mode %04o: others may read it; "
                         "chmod 600 it" % (path, mode))
    keys = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith(b"#"):
                continue
            kid, sep, b64 = line.partition(b":")
            try:
                key = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError):
                key = b""
            if not sep or not kid or len(key) < 16:
                raise ValueError("%s line %d: expected KID:BASE64-KEY (16 bytes or more)"
                                 % (path, n))
            keys.append((kid.decode("ascii"), key))
    if not keys:
        raise ValueError("%s: no key" % path)
    return keys


class SendTimeout(Exception):
    """The broker did not acknowledge the request in time; it may still arrive."""


class ResultTimeout(Exception):
    """No result for the execution id within the timeout."""


class RunpoolClient:
    def __init__(self, brokers, requests_topic=REQUESTS_TOPIC,
                 results_topic=RESULTS_TOPIC, connect_timeout=10.0, extra=None,
                 signing_keys=None, signing_kid=None):
        self._sign_key = None
        if signing_keys:
            keys = load_signing_keys(signing_keys)
            kid = signing_kid or keys[0][0]
            if kid not in dict(keys):
                raise ValueError("no key %s in %s" % (kid, signing_keys))
            self._sign_key = (kid, dict(keys)[kid])
        common = {"bootstrap.servers": brokers}
        common.update(extra or {})
        self._requests_topic = requests_topic
        self._results_topic = results_topic
        self._producer = Producer({**common,
                                   "partitioner": "murmur2_random",
                                   "enable.idempotence": True})
        self._consumer = Consumer({**common,
                                   # Required by the client; never joined
                                   # (assign only, nothing committed).
                                   "group.id": "runpool-client-" + uuid.uuid4().hex,
                                   "enable.auto.commit": False,
                                   "isolation.level": "read_committed"})
        self._sent = set()
        self._pending = {}
        try:
            md = self._consumer.list_topics(results_topic, timeout=connect_timeout)
            topic = md.topics.get(results_topic)
            if topic is None or topic.error is not None:
                raise KafkaException(topic.error if topic else
                                     "no topic " + results_topic)
            assignment = []
            for p in sorted(topic.partitions):
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(results_topic, p), timeout=connect_timeout)
                assignment.append(TopicPartition(results_topic, p, high))
            self._consumer.assign(assignment)
        except Exception:
            self.close()
            raise

    def submit(self, session_id, command, timeout_s=None, env=None,
               execution_id=None, send_timeout=10.0):
        """Publish one exec request; returns its execution id."""
        eid = execution_id or str(uuid.uuid4())
        req = {"v": 1, "execution_id": eid, "session_id": session_id,
               "op": "exec", "command": command,
               "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if timeout_s is not None:
            req["timeout_s"] = timeout_s
        if env:
            req["env"] = env
        outcome = {}

        def delivered(err, _msg):
            outcome["err"] = err

        key, value = session_id.encode(), json.dumps(req).encode()
        headers = [("execution_id", eid.encode()), ("session_id", key)]
        if self._sign_key:
            kid, secret = self._sign_key
            headers.append((SIGNATURE_HEADER,
                            sign(secret, kid, int(time.time()), key, value).encode()))
        self._producer.produce(self._requests_topic, key=key, value=value,
                               headers=headers, on_delivery=delivered)
        self._producer.flush(send_timeout)
        if "err" not in outcome:
            raise SendTimeout("request %s not acknowledged within %.1f s" % (eid, send_timeout))
        if outcome["err"] is not None:
            raise KafkaException(outcome["err"])
        self._sent.add(eid)
        return eid

    def wait(self, execution_id, timeout=300.0):
        """The result (a dict) of execution_id; raises ResultTimeout."""
        if execution_id in self._pending:
            return self._pending.pop(execution_id)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ResultTimeout("no result for %s within %.1f s" % (execution_id, timeout))
            msg = self._consumer.poll(min(left, 0.5))
            if msg is None:
                continue
            if msg.error():
                # Transport errors are retried by the client itself; only a
                # fatal one ends the wait.
                if msg.error().fatal():
                    raise KafkaException(msg.error())
                continue
            eid = dict(msg.headers() or []).get("execution_id")
            eid = eid.decode() if eid is not None else None
            try:
                result = json.loads(msg.value())
            except (TypeError, ValueError):
                continue  # not a result; never ours
            eid = eid or result.get("execution_id")
            if eid == execution_id:
                self._sent.discard(eid)
                return result
            if eid in self._sent:
                if len(self._pending) >= PENDING_MAX:
                    self._pending.pop(next(iter(self._pending)))
                self._pending[eid] = result

    def close(self):
        self._producer.flush(10.0)
        self._consumer.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Run one command in a runpool session.")
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--session", required=True)
    ap.add_argument("--timeout", type=float, default=300.0,
                    help="seconds to wait for the result (default 300)")
    ap.add_argument("--requests-topic", default=REQUESTS_TOPIC)
    ap.add_argument("--results-topic", default=RESULTS_TOPIC)
    ap.add_argument("--signing-keys", default=os.environ.get("RUNPOOL_SIGNING_KEYS"),
                    help="sign with a key of this file (default $RUNPOOL_SIGNING_KEYS)")
    ap.add_argument("command")
    args = ap.parse_args(argv)
    try:
        client = RunpoolClient(args.brokers, args.requests_topic, args.results_topic,
                               signing_keys=args.signing_keys)
    except (KafkaException, ValueError, OSError) as e:
        print("runpool_client: %s" % e, file=sys.stderr)
        return 2
    try:
        eid = client.submit(args.session, args.command)
        print(json.dumps(client.wait(eid, args.timeout)))
        return 0
    except ResultTimeout as e:
        print("runpool_client: %s" % e, file=sys.stderr)
        return 1
    except (KafkaException, SendTimeout) as e:
        print("runpool_client: %s" % e, file=sys.stderr)
        return 2
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
