#!/usr/bin/env python3
"""cloudrun_fake: a local stand-in for the Cloud Run Admin API v2 (REST).

Serves /v2/ jobs (create, get, list, patch, delete, run), executions (get,
list, cancel, delete), tasks (get, list) and operations (get, list, wait,
delete) with the reply shapes of the real API, and runs every execution the
way Cloud Run runs a job's container: each task attempt is a child process
(the container's command, or --executor for the image) in its own process
group, with exactly the container's environment. Python 3.11 standard
library only. See README.md next to this file.

    python3 tests/fakes/cloudrun/cloudrun_fake.py --port 0 --port-file F \
        [--executor PATH] [--start-latency-ms N] [--state-dir DIR] ...

Prints the base URL (http://127.0.0.1:PORT) on stdout and writes it to
--port-file, then serves until SIGTERM/SIGINT (or until its parent process
exits, unless --no-parent-watch). On exit every task's process group gets
SIGKILL.
"""

import argparse
import base64
import binascii
import collections
import datetime
import heapq
import http.server
import json
import os
import random
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cloudrun_schema as S  # noqa: E402  (generated table, stdlib only)
import simulated  # noqa: E402  (simulated images: no process per task)

API_TYPE = "type.googleapis.com/google.cloud.run.v2."
MAX_OPS = 50000
JOB_ID_RE = re.compile(r"^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$")
# Kubernetes generateName alphabet (no vowels, no look-alikes): J-xxxxx.
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# --------------------------------------------------------------------------
# Errors (google.rpc.Status names, HTTP mapping of google/rpc/code.proto)

GRPC_CODE = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5, "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
    "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13,
    "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}
HTTP_OF_STATUS = {
    "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504, "NOT_FOUND": 404, "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403, "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501, "INTERNAL": 500, "UNAVAILABLE": 503,
    "DATA_LOSS": 500, "UNAUTHENTICATED": 401,
}
STATUS_OF_HTTP = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
    404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED",
    503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
INJECTED_MESSAGE = {
    "RESOURCE_EXHAUSTED": "Quota exceeded for quota metric 'Requests' of service "
                          "'run.googleapis.com' (injected by cloudrun_fake).",
    "INTERNAL": "Internal error encountered.",
    "UNAVAILABLE": "The service is currently unavailable.",
}


class ApiError(Exception):
    def __init__(self, status, message, http_code=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.http = http_code or HTTP_OF_STATUS.get(status, 500)

    def body(self):
        return {"error": {"code": self.http, "message": self.message,
                          "status": self.status}}


def invalid(msg):
    return ApiError("INVALID_ARGUMENT", msg)


# --------------------------------------------------------------------------
# Time, durations

def now():
    return time.time()


def rfc3339(t):
    dt = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


DURATION_RE = re.compile(r"^(-)?(\d+)(?:\.(\d{1,9}))?s$")
TIMESTAMP_RE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")


def parse_duration(s):
    m = DURATION_RE.match(s) if isinstance(s, str) else None
    if not m:
        return None
    v = int(m.group(2)) + (int((m.group(3) or "0").ljust(9, "0")) / 1e9)
    return -v if m.group(1) else v


def format_duration(seconds):
    """protobuf JSON: 0, 3, 6 or 9 fractional digits."""
    neg = seconds < 0
    seconds = abs(seconds)
    whole = int(seconds)
    nanos = int(round((seconds - whole) * 1e9))
    if nanos >= 1000000000:
        whole, nanos = whole + 1, nanos - 1000000000
    if nanos == 0:
        frac = ""
    elif nanos % 1000000 == 0:
        frac = ".%03d" % (nanos // 1000000)
    elif nanos % 1000 == 0:
        frac = ".%06d" % (nanos // 1000)
    else:
        frac = ".%09d" % nanos
    return ("-" if neg else "") + str(whole) + frac + "s"


def new_etag():
    return '"' + base64.b64encode(os.urandom(12)).decode() + '"'


# --------------------------------------------------------------------------
# Schema-driven JSON codec (protobuf JSON mapping of the real messages)

FIELDS = {}   # message -> {json or proto name: spec}
ORDER = {}    # message -> tuple of specs in declaration order
for _msg, _fields in S.MESSAGES.items():
    FIELDS[_msg] = {}
    for _f in _fields:
        FIELDS[_msg][_f[0]] = _f
        FIELDS[_msg][_f[1]] = _f
    ORDER[_msg] = _fields
ENUM_NUM = {e: dict(v) for e, v in S.ENUMS.items()}
ENUM_NAME = {e: {n: k for k, n in v} for e, v in S.ENUMS.items()}
ENUM_DEFAULT = {e: v[0][0] for e, v in S.ENUMS.items() if v}
INT_RANGES = {"int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1),
              "int64": (-2**63, 2**63 - 1), "uint64": (0, 2**64 - 1)}


def _where(path):
    return f" at '{path}'" if path else ""


def parse_msg(msg, value, path):
    """Validate a request JSON object against `msg`; return the canonical
    form (json names, enums by name, ints as int, durations normalized)."""
    if not isinstance(value, dict):
        raise invalid(f"Invalid value{_where(path)} ({msg.split('.')[-1]}), "
                      f"{json.dumps(value)}: expected an object")
    out = {}
    fields = FIELDS[msg]
    for key, v in value.items():
        spec = fields.get(key)
        if spec is None:
            raise invalid(f'Invalid JSON payload received. Unknown name "{key}"'
                          f"{_where(path)}: Cannot find field.")
        jname, pname, kind, typ, repeated, _presence = spec
        if v is None:
            continue
        sub = f"{path}.{pname}" if path else pname
        if repeated:
            if not isinstance(v, list):
                raise invalid(f"Invalid value at '{sub}': expected a list")
            out[jname] = [_parse_value(kind, typ, x, f"{sub}[{i}]")
                          for i, x in enumerate(v) if x is not None]
        elif kind == "map":
            if not isinstance(v, dict):
                raise invalid(f"Invalid value at '{sub}': expected an object")
            out[jname] = {str(k): _parse_value("scalar", typ, x, f"{sub}[{k}]")
                          for k, x in v.items()}
        else:
            out[jname] = _parse_value(kind, typ, v, sub)
    return out


def _parse_value(kind, typ, v, path):
    if kind == "msg":
        return parse_msg(typ, v, path)
    if kind == "enum":
        if isinstance(v, bool):
            pass
        elif isinstance(v, int) and v in ENUM_NAME[typ]:
            return ENUM_NAME[typ][v]
        elif isinstance(v, str) and v in ENUM_NUM[typ]:
            return v
        raise invalid(f"Invalid value at '{path}' (type.googleapis.com/{typ}), "
                      f"{json.dumps(v)}")
    if kind == "wkt":
        if typ == "google.protobuf.Duration":
            d = parse_duration(v)
            if d is None:
                raise invalid(f"Invalid value at '{path}' (type.googleapis.com/"
                              f"google.protobuf.Duration), {json.dumps(v)}")
            return format_duration(d)
        if typ == "google.protobuf.Timestamp":
            if not isinstance(v, str) or not TIMESTAMP_RE.match(v):
                raise invalid(f"Invalid value at '{path}' (type.googleapis.com/"
                              f"google.protobuf.Timestamp), {json.dumps(v)}")
            return v
        return v
    # scalars
    if typ in INT_RANGES:
        if isinstance(v, bool):
            raise invalid(f"Invalid value at '{path}' ({'TYPE_' + typ.upper()}), {json.dumps(v)}")
        if isinstance(v, str) and re.fullmatch(r"-?\d+", v):
            v = int(v)
        elif isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or not (INT_RANGES[typ][0] <= v <= INT_RANGES[typ][1]):
            raise invalid(f"Invalid value at '{path}' ({'TYPE_' + typ.upper()}), {json.dumps(v)}")
        return v
    if typ == "bool":
        if not isinstance(v, bool):
            raise invalid(f"Invalid value at '{path}' (TYPE_BOOL), {json.dumps(v)}")
        return v
    if typ in ("double", "float"):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise invalid(f"Invalid value at '{path}' (TYPE_{typ.upper()}), {json.dumps(v)}")
        return v
    if not isinstance(v, str):
        raise invalid(f"Invalid value at '{path}' (TYPE_STRING), {json.dumps(v)}")
    return v


def render_msg(msg, d, int_enums):
    """Canonical dict -> reply JSON: declaration order, defaults omitted
    (unless the field has explicit presence), int64 as strings, enums by
    name (or number when the caller asked for enum-encoding=int), nothing
    the message does not define."""
    out = {}
    for jname, _pname, kind, typ, repeated, presence in ORDER[msg]:
        v = d.get(jname)
        if v is None:
            continue
        if repeated:
            if v:
                out[jname] = [_render_value(kind, typ, x, int_enums) for x in v]
            continue
        if kind == "map":
            if v:
                out[jname] = {k: _render_value("scalar", typ, x, int_enums)
                              for k, x in v.items()}
            continue
        if not presence and kind in ("scalar", "enum") and _is_default(kind, typ, v):
            continue
        out[jname] = _render_value(kind, typ, v, int_enums)
    return out


def _is_default(kind, typ, v):
    if kind == "enum":
        return v == ENUM_DEFAULT[typ]
    if typ in ("string", "bytes"):
        return v == ""
    if typ == "bool":
        return v is False
    return v == 0


def _render_value(kind, typ, v, int_enums):
    if kind == "msg":
        return render_msg(typ, v, int_enums)
    if kind == "enum":
        return ENUM_NUM[typ][v] if int_enums else v
    if kind == "scalar" and typ in ("int64", "uint64"):
        return str(v)
    return v


def render_any(msg, d, int_enums):
    out = {"@type": API_TYPE + msg.split(".")[-1]}
    out.update(render_msg(msg, d, int_enums))
    return out


M_JOB = "google.cloud.run.v2.Job"
M_EXECUTION = "google.cloud.run.v2.Execution"
M_TASK = "google.cloud.run.v2.Task"
M_RUNREQ = "google.cloud.run.v2.RunJobRequest"
M_CANCELREQ = "google.cloud.run.v2.CancelExecutionRequest"


# --------------------------------------------------------------------------
# Event loop: timers + pidfds, one thread

class Timer:
    __slots__ = ("when", "fn", "cancelled")

    def __init__(self, when, fn):
        self.when, self.fn, self.cancelled = when, fn, False

    def cancel(self):
        self.cancelled = True

    def __lt__(self, other):
        return self.when < other.when


class Loop(threading.Thread):
    def __init__(self):
        super().__init__(name="cloudrun-fake-loop", daemon=True)
        self._heap = []
        self._soon = []
        self._lock = threading.Lock()
        self._sel = selectors.DefaultSelector()
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)
        self._sel.register(self._rfd, selectors.EVENT_READ, None)
        self.stopping = False

    def _wake(self):
        try:
            os.write(self._wfd, b"x")
        except BlockingIOError:
            pass

    def call_later(self, delay, fn):
        t = Timer(time.monotonic() + max(0.0, delay), fn)
        with self._lock:
            heapq.heappush(self._heap, t)
        self._wake()
        return t

    def call_soon(self, fn):
        with self._lock:
            self._soon.append(fn)
        self._wake()

    # only from the loop thread (use call_soon from elsewhere)
    def add_reader(self, fd, fn):
        self._sel.register(fd, selectors.EVENT_READ, fn)

    def remove_reader(self, fd):
        self._sel.unregister(fd)

    def run(self):
        while not self.stopping:
            with self._lock:
                timeout = None
                if self._soon:
                    timeout = 0
                elif self._heap:
                    timeout = max(0.0, self._heap[0].when - time.monotonic())
            if timeout is None or timeout > 1.0:
                timeout = 1.0
            for key, _ in self._sel.select(timeout):
                if key.data is None:
                    try:
                        while os.read(self._rfd, 4096):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    self._run(key.data)
            due = []
            with self._lock:
                t = time.monotonic()
                while self._heap and self._heap[0].when <= t:
                    due.append(heapq.heappop(self._heap))
                soon, self._soon = self._soon, []
            for fn in soon:
                self._run(fn)
            for timer in due:
                if not timer.cancelled:
                    self._run(timer.fn)

    @staticmethod
    def _run(fn):
        try:
            fn()
        except Exception:  # a bug must not stop the loop
            traceback.print_exc()


# --------------------------------------------------------------------------
# Model

class Op:
    """A long-running operation. metadata_fn() gives the live canonical
    metadata until the operation is done; then it is frozen."""

    def __init__(self, fake, project, location, meta_type, metadata_fn):
        self.id = str(uuid.uuid4())
        self.name = f"projects/{project}/locations/{location}/operations/{self.id}"
        self.parent = f"projects/{project}/locations/{location}"
        self.meta_type = meta_type
        self.metadata_fn = metadata_fn
        self.frozen_meta = None
        self.done = False
        self.error = None          # (grpc code, message)
        self.response = None       # (type, canonical dict)
        self.event = threading.Event()
        self.seq = fake.seq()

    def finish(self, response_type=None, response=None, error=None):
        if self.done:
            return
        self.frozen_meta = self.metadata_fn()
        self.done = True
        if error is not None:
            self.error = error
        else:
            self.response = (response_type, response)
        self.event.set()

    def render(self, int_enums):
        meta = self.frozen_meta if self.done else self.metadata_fn()
        out = {"name": self.name,
               "metadata": render_any(self.meta_type, meta, int_enums)}
        if self.done:
            out["done"] = True
            if self.error is not None:
                code, msg = self.error
                out["error"] = {"code": code, "message": msg}
            else:
                rtype, resp = self.response
                out["response"] = render_any(rtype, resp, int_enums)
        return out


class Job:
    def __init__(self, project, location, job_id, res):
        self.project, self.location, self.id = project, location, job_id
        self.parent = f"projects/{project}/locations/{location}"
        self.name = f"{self.parent}/jobs/{job_id}"
        self.res = res                 # canonical Job (user fields + server ones)
        self.ready = False
        self.ready_time = None
        self.executions = []           # creation order
        self.execution_count = 0
        self.done_count = 0            # at least the done ones in executions
        self.latest = None             # Execution
        self.deleted = False

    def canonical(self):
        d = dict(self.res)
        d["executionCount"] = self.execution_count
        d["reconciling"] = not self.ready
        d["observedGeneration"] = d.get("generation", 1) if self.ready else 0
        t = self.ready_time or parse_ts(d["createTime"])
        d["terminalCondition"] = {
            "type": "Ready",
            "state": "CONDITION_SUCCEEDED" if self.ready else "CONDITION_RECONCILING",
            "lastTransitionTime": rfc3339(t),
        }
        if self.latest is not None:
            ex = self.latest
            ref = {"name": ex.name, "createTime": rfc3339(ex.create_time),
                   "completionStatus": ex.completion_status()}
            if ex.completion_time:
                ref["completionTime"] = rfc3339(ex.completion_time)
            d["latestCreatedExecution"] = ref
        return d


def parse_ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class Task:
    def __init__(self, ex, index):
        self.ex = ex
        self.index = index
        self.id = f"{ex.id}-task{index}"
        self.name = f"{ex.name}/tasks/{self.id}"
        self.uid = str(uuid.uuid4())
        self.state = "pending"   # pending starting running succeeded failed cancelled
        self.attempt = 0
        self.retried = 0
        self.proc = None
        self.virtual = False     # running without a process (injected hang)
        self.gen = 0             # bumps per attempt: stale timers ignore
        self.timed_out = False
        self.cancel_requested = False
        self.term_sent = False
        self.deadline = None
        self.kill_timer = None
        self.start_time = None
        self.scheduled_time = None
        self.completion_time = None
        self.exit_code = None
        self.term_signal = None
        self.last_message = None
        self.log_path = None

    def terminal(self):
        return self.state in ("succeeded", "failed", "cancelled")


class Execution:
    def __init__(self, fake, job, eid, template, task_count, parallelism, fault):
        self.fake = fake
        self.job = job
        self.id = eid
        self.name = f"{job.name}/executions/{eid}"
        self.seq = fake.seq()
        self.uid = str(uuid.uuid4())
        self.create_time = now()
        self.update_time = self.create_time
        self.start_time = None
        self.completion_time = None
        self.template = template      # canonical TaskTemplate after overrides
        self.task_count = task_count
        self.parallelism = parallelism
        self.fault = fault or {}
        # Not in executions.list before this (monotonic s): the listing lag
        # a jobs.run fault with list_lag_ms asks for (D2: after a 5xx/504
        # or a lost reply, the caller must not take "not listed" for "not
        # started").
        self.hidden_until = 0.0
        self.state = "pending"        # pending running done
        self.outcome = None           # succeeded failed cancelled
        self.cancelling = False
        self.deleting = False
        self.delete_time = None
        self.retried = 0
        self.tasks = [Task(self, i) for i in range(task_count)]
        self.conditions = [{"type": "Completed", "state": "CONDITION_PENDING",
                            "lastTransitionTime": rfc3339(self.create_time)}]
        self.failure_message = None
        self.run_op = None
        self.waiting_ops = []         # cancel/delete operations
        self.etag = new_etag()
        self.exec_env_id = None       # EXECUTION_ID value
        self.start_timer = None
        jt = job.res.get("template", {})
        self.labels = dict(jt.get("labels", {}))
        self.annotations = dict(jt.get("annotations", {}))
        self.timeout_s = parse_duration(template.get("timeout", "600s"))
        self.max_retries = template.get("maxRetries", 3)
        self._render_cache = None     # (fingerprint, int_enums, reply)

    def fingerprint(self):
        """Changes whenever canonical() can: every change of a condition
        or a task moves update_time; the rest is listed. With the lock."""
        return (self.update_time, self.state, self.start_time, self.completion_time,
                self.delete_time, self.etag, self.retried, self.cancelling,
                tuple(self.counts().values()))

    def rendered(self, fp, d, int_enums):
        """render_msg of canonical() d taken at fingerprint fp, kept until
        the execution changes: a sweep lists the same 1,000 executions
        every 250 ms (bench d), and rendering them was most of the fake's
        CPU. Any thread; the cached reply is never mutated."""
        c = self._render_cache
        if c is not None and c[0] == fp and c[1] == int_enums:
            return c[2]
        out = render_msg(M_EXECUTION, d, int_enums)
        self._render_cache = (fp, int_enums, out)
        return out

    def _cached_or_render(self, fp, int_enums):
        c = self._render_cache
        if c is not None and c[0] == fp and c[1] == int_enums:
            return c[2]
        with self.fake.lock:   # changed meanwhile, or other enum encoding
            d, fp = self.canonical(), self.fingerprint()
        return self.rendered(fp, d, int_enums)

    def completion_status(self):
        if self.state == "pending":
            return "EXECUTION_PENDING"
        if self.state == "running":
            return "EXECUTION_RUNNING"
        return {"succeeded": "EXECUTION_SUCCEEDED", "failed": "EXECUTION_FAILED",
                "cancelled": "EXECUTION_CANCELLED"}[self.outcome]

    def set_condition(self, ctype, state, message=None, reason=None, when=None):
        c = {"type": ctype, "state": state,
             "lastTransitionTime": rfc3339(when or now())}
        if message:
            c["message"] = message
        if reason:
            c["executionReason"] = reason
        for i, old in enumerate(self.conditions):
            if old["type"] == ctype:
                self.conditions[i] = c
                break
        else:
            # Completed stays last; the others keep their order.
            self.conditions.insert(len(self.conditions) - 1
                                   if self.conditions and self.conditions[-1]["type"] == "Completed"
                                   else len(self.conditions), c)
        self.update_time = now()

    def counts(self):
        c = {"running": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
        for t in self.tasks:
            if t.state in ("starting", "running"):
                c["running"] += 1
            elif t.state in c:
                c[t.state] += 1
        return c

    def canonical(self):
        c = self.counts()
        d = {
            "name": self.name, "uid": self.uid, "generation": 1,
            "labels": self.labels, "annotations": self.annotations,
            "createTime": rfc3339(self.create_time),
            "updateTime": rfc3339(self.update_time),
            "launchStage": "GA",
            "job": self.job.id,
            "parallelism": self.parallelism,
            "taskCount": self.task_count,
            "template": self.template,
            "reconciling": self.state != "done",
            "conditions": [dict(x) for x in self.conditions],
            "observedGeneration": 1,
            "runningCount": c["running"],
            "succeededCount": c["succeeded"],
            "failedCount": c["failed"],
            "cancelledCount": c["cancelled"],
            "retriedCount": self.retried,
            "logUri": ("https://console.cloud.google.com/logs/viewer?project="
                       f"{self.job.project}&advancedFilter=resource.type%3D%22cloud_run_job%22"
                       f"%20labels.%22run.googleapis.com/execution_name%22%3D%22{self.id}%22"),
            "creator": "cloudrun-fake@localhost",
            "etag": self.etag,
        }
        if self.start_time:
            d["startTime"] = rfc3339(self.start_time)
        if self.completion_time:
            d["completionTime"] = rfc3339(self.completion_time)
        if self.delete_time:
            d["deleteTime"] = rfc3339(self.delete_time)
        return d

    def task_canonical(self, t):
        tpl = self.template
        d = {
            "name": t.name, "uid": t.uid, "generation": 1,
            "labels": self.labels, "annotations": self.annotations,
            "createTime": rfc3339(self.create_time),
            "updateTime": rfc3339(self.update_time),
            "job": self.job.id, "execution": self.id,
            "containers": tpl.get("containers", []),
            "volumes": tpl.get("volumes", []),
            "maxRetries": self.max_retries,
            "timeout": tpl.get("timeout"),
            "serviceAccount": tpl.get("serviceAccount", ""),
            "executionEnvironment": tpl.get("executionEnvironment",
                                            "EXECUTION_ENVIRONMENT_UNSPECIFIED"),
            "reconciling": not t.terminal(),
            "observedGeneration": 1,
            "index": t.index,
            "retried": t.retried,
            "etag": self.etag,
        }
        if t.scheduled_time:
            d["scheduledTime"] = rfc3339(t.scheduled_time)
        if t.start_time:
            d["startTime"] = rfc3339(t.start_time)
        if t.completion_time:
            d["completionTime"] = rfc3339(t.completion_time)
        conds = []
        if t.terminal():
            state = "CONDITION_SUCCEEDED" if t.state == "succeeded" else "CONDITION_FAILED"
            c = {"type": "Completed", "state": state,
                 "lastTransitionTime": rfc3339(t.completion_time or now())}
            if t.state == "cancelled":
                c["executionReason"] = "CANCELLED"
            elif t.state == "failed" and not t.timed_out:
                c["executionReason"] = "NON_ZERO_EXIT_CODE"
            if t.last_message:
                c["message"] = t.last_message
            conds.append(c)
        else:
            conds.append({"type": "Completed",
                          "state": "CONDITION_PENDING" if t.state == "pending"
                          else "CONDITION_RECONCILING",
                          "lastTransitionTime": rfc3339(t.start_time or self.create_time)})
        d["conditions"] = conds
        if t.exit_code is not None or t.term_signal is not None:
            res = {}
            if t.exit_code is not None:
                res["exitCode"] = t.exit_code
            if t.term_signal is not None:
                res["termSignal"] = t.term_signal
            if t.state == "failed" and t.last_message:
                res["status"] = {"code": GRPC_CODE["UNKNOWN"], "message": t.last_message}
            d["lastAttemptResult"] = res
        return d


# --------------------------------------------------------------------------
# Faults and statistics

ROUTES = ("jobs.create", "jobs.get", "jobs.list", "jobs.patch", "jobs.delete",
          "jobs.run", "executions.get", "executions.list", "executions.cancel",
          "executions.delete", "tasks.get", "tasks.list", "operations.get",
          "operations.list", "operations.wait", "operations.delete")


def _check_fault(rule):
    if not isinstance(rule, dict):
        raise ValueError("a fault is a JSON object")
    allowed = {"route", "method", "path_contains", "count", "status", "after",
               "drop", "message", "list_lag_ms", "every"}
    extra = set(rule) - allowed
    if extra:
        raise ValueError(f"unknown fault keys {sorted(extra)}")
    if rule.get("route") not in ROUTES:
        raise ValueError(f"fault route must be one of {', '.join(ROUTES)}")
    r = {"route": rule["route"], "method": rule.get("method"),
         "path_contains": rule.get("path_contains"),
         "count": int(rule.get("count", 1)), "after": bool(rule.get("after", False)),
         "drop": bool(rule.get("drop", False)),
         "status": int(rule.get("status", 503)), "message": rule.get("message"),
         "list_lag_ms": int(rule.get("list_lag_ms", 0)),
         "every": int(rule.get("every", 1)), "seen": 0}
    if r["every"] < 1:
        raise ValueError("every is a whole number >= 1")
    if r["list_lag_ms"] < 0 or (r["list_lag_ms"] and
                                (r["route"] != "jobs.run" or not r["after"])):
        raise ValueError("list_lag_ms is for jobs.run faults with after:true")
    # status 200 with after:true is no error at all: the action is done and
    # answered normally; only its side effects (list_lag_ms) apply.
    if r["status"] == 200 and (not r["after"] or r["drop"]):
        raise ValueError("status 200 is for after:true faults (with list_lag_ms)")
    if not r["drop"] and r["status"] != 200 and r["status"] not in STATUS_OF_HTTP:
        raise ValueError(f"fault status must be one of {sorted(STATUS_OF_HTTP)}")
    return r


def _check_exec_fault(rule):
    if not isinstance(rule, dict):
        raise ValueError("an exec fault is a JSON object")
    allowed = {"job", "env", "execution_id", "count", "exit_code", "hang",
               "start_latency_ms"}
    extra = set(rule) - allowed
    if extra:
        raise ValueError(f"unknown exec fault keys {sorted(extra)}")
    env = dict(rule.get("env") or {})
    if "execution_id" in rule:
        env["EXECUTION_ID"] = rule["execution_id"]
    r = {"job": rule.get("job"), "env": env, "count": int(rule.get("count", 1))}
    n = sum(k in rule for k in ("exit_code", "hang", "start_latency_ms"))
    if n != 1:
        raise ValueError("an exec fault has exactly one of exit_code, hang, start_latency_ms")
    if "exit_code" in rule:
        r["exit_code"] = int(rule["exit_code"])
    if "hang" in rule:
        if rule["hang"] not in ("start", "finish"):
            raise ValueError("hang is 'start' or 'finish'")
        r["hang"] = rule["hang"]
    if "start_latency_ms" in rule:
        r["start_latency_ms"] = int(rule["start_latency_ms"])
    return r


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.requests = {}
        self.responses = {}
        self.auth = {"present": 0, "absent": 0}
        self.executions_by_eid = {}
        self.starts_by_eid = {}
        self.executions_created = 0
        self.container_starts = 0
        self.fs_areas = 0
        self.faults_injected = 0
        self.started = time.monotonic()
        self.recent = collections.deque(maxlen=2000)

    def bump(self, table, key, n=1):
        table[key] = table.get(key, 0) + n


# --------------------------------------------------------------------------
# The fake

class Fake:
    def __init__(self, args):
        self.lock = threading.Lock()        # the model (jobs/executions/ops)
        self.seq = _Counter()
        self.jobs = {}
        self.executions = {}
        self.ops = {}
        self.op_order = collections.deque()
        self.loop = Loop()
        self.spawner = ThreadPoolExecutor(max_workers=4, thread_name_prefix="spawn")
        self.stats = Stats()
        self.cfg_lock = threading.Lock()
        self.quiet = args.quiet
        self.state_dir = args.state_dir
        self.own_state_dir = False
        if not self.state_dir:
            self.state_dir = tempfile.mkdtemp(prefix="cloudrun-fake.")
            self.own_state_dir = True
        os.makedirs(os.path.join(self.state_dir, "logs"), exist_ok=True)
        # Each container's own filesystem area (_fresh_filesystem).
        self.fs_root = os.path.join(self.state_dir, "fs")
        os.makedirs(self.fs_root, exist_ok=True)
        self.cfg = {
            "start_latency_ms": args.start_latency_ms,
            "op_latency_ms": args.op_latency_ms,
            "cancel_grace_s": args.cancel_grace_s,
            "executor": args.executor,
            "images": {},
            "secrets": {},
            "cloud_run_env": not args.no_cloud_run_env,
            "run_failure_error_code": GRPC_CODE["ABORTED"],
            "default_page_size": 100,
            "max_page_size": 1000,
            "faults": [],
            "exec_faults": [],
            "fresh_filesystem": True,
            "simulated_images": {},
            "storage_emulator_host": os.environ.get("STORAGE_EMULATOR_HOST", ""),
        }
        self.base_env = {k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR")
                         if k in os.environ}
        self.live = set()                   # tasks with a process
        self.sim = None                     # SimRunner, made on first use
        self.pidfd_ok = hasattr(os, "pidfd_open")

    # ---------------- config ----------------
    def apply_config(self, body):
        if not isinstance(body, dict):
            raise ValueError("config is a JSON object")
        known = {"start_latency_ms", "op_latency_ms", "cancel_grace_s", "executor",
                 "images", "secrets", "cloud_run_env", "run_failure_error_code",
                 "default_page_size", "max_page_size", "faults", "exec_faults",
                 "clear_faults", "clear_exec_faults", "reset_stats",
                 "fresh_filesystem", "simulated_images",
                 "storage_emulator_host"}
        extra = set(body) - known
        if extra:
            raise ValueError(f"unknown config keys {sorted(extra)}")
        faults = [_check_fault(f) for f in body.get("faults", [])]
        exec_faults = [_check_exec_fault(f) for f in body.get("exec_faults", [])]
        sims = body.get("simulated_images", {})
        if not isinstance(sims, dict):
            raise ValueError("simulated_images maps an image to its simulation")
        sims = {str(k): simulated.check_spec(k, v) for k, v in sims.items()}
        if not isinstance(body.get("storage_emulator_host", ""), str):
            raise ValueError("storage_emulator_host is a string")
        with self.cfg_lock:
            for k in ("start_latency_ms", "op_latency_ms", "run_failure_error_code",
                      "default_page_size", "max_page_size"):
                if k in body:
                    self.cfg[k] = int(body[k])
            if "cancel_grace_s" in body:
                self.cfg["cancel_grace_s"] = float(body["cancel_grace_s"])
            if "executor" in body:
                self.cfg["executor"] = body["executor"] or None
            if "cloud_run_env" in body:
                self.cfg["cloud_run_env"] = bool(body["cloud_run_env"])
            if "fresh_filesystem" in body:
                self.cfg["fresh_filesystem"] = bool(body["fresh_filesystem"])
            if "images" in body:
                imgs = body["images"]
                if not isinstance(imgs, dict) or not all(
                        isinstance(v, list) and v and all(isinstance(a, str) for a in v)
                        for v in imgs.values()):
                    raise ValueError("images maps an image to a non-empty argv list")
                self.cfg["images"].update(imgs)
            if "secrets" in body:
                if not isinstance(body["secrets"], dict):
                    raise ValueError("secrets maps a secret name to its value")
                self.cfg["secrets"].update({str(k): str(v) for k, v in body["secrets"].items()})
            self.cfg["simulated_images"].update(sims)
            if "storage_emulator_host" in body:
                self.cfg["storage_emulator_host"] = body["storage_emulator_host"]
            if body.get("clear_faults"):
                self.cfg["faults"] = []
            if body.get("clear_exec_faults"):
                self.cfg["exec_faults"] = []
            self.cfg["faults"].extend(faults)
            self.cfg["exec_faults"].extend(exec_faults)
        if body.get("reset_stats"):
            with self.stats.lock:
                self.stats.reset()

    def config_view(self):
        with self.cfg_lock:
            return json.loads(json.dumps(self.cfg))

    def take_fault(self, route, method, path):
        with self.cfg_lock:
            for r in self.cfg["faults"]:
                if r["route"] != route or r["count"] == 0:
                    continue
                if r["method"] and r["method"].upper() != method:
                    continue
                if r["path_contains"] and r["path_contains"] not in path:
                    continue
                # every=k: only each k-th matching request (a steady rate
                # of faults rather than a burst).
                r["seen"] += 1
                if r["seen"] % r["every"]:
                    continue
                if r["count"] > 0:
                    r["count"] -= 1
                self.cfg["faults"] = [x for x in self.cfg["faults"] if x["count"] != 0]
                return dict(r)
        return None

    def take_exec_fault(self, job_id, env):
        with self.cfg_lock:
            for r in self.cfg["exec_faults"]:
                if r["count"] == 0:
                    continue
                if r["job"] and r["job"] != job_id:
                    continue
                if any(env.get(k) != v for k, v in r["env"].items()):
                    continue
                if r["count"] > 0:
                    r["count"] -= 1
                self.cfg["exec_faults"] = [x for x in self.cfg["exec_faults"] if x["count"] != 0]
                return dict(r)
        return None

    def c(self, key):
        with self.cfg_lock:
            return self.cfg[key]

    def log(self, msg):
        if not self.quiet:
            sys.stderr.write(f"cloudrun-fake: {msg}\n")
            sys.stderr.flush()

    # ---------------- operations ----------------
    def new_op(self, project, location, meta_type, metadata_fn):
        op = Op(self, project, location, meta_type, metadata_fn)
        self.ops[op.name] = op
        self.op_order.append(op)
        # Keep memory bounded in long sessions: forget the oldest finished
        # operations beyond MAX_OPS (operations.get then answers 404).
        while len(self.op_order) > MAX_OPS and self.op_order[0].done:
            self.ops.pop(self.op_order.popleft().name, None)
        return op

    @staticmethod
    def reply_now(op):
        """The reply of the call that created `op`, as of now (under the
        lock): a task that ends at once must not turn the creating call's
        reply into done:true, which the real API never answers."""
        name, meta_type, snap = op.name, op.meta_type, op.metadata_fn()
        return lambda ie: {"name": name, "metadata": render_any(meta_type, snap, ie)}

    def finish_op_later(self, op, fn):
        delay = self.c("op_latency_ms") / 1000.0

        def done():
            with self.lock:
                fn()
        self.loop.call_later(delay, done)

    # ---------------- jobs ----------------
    def get_job(self, parent, job_id):
        job = self.jobs.get(f"{parent}/jobs/{job_id}")
        if job is None:
            p = parent.split("/")
            raise ApiError("NOT_FOUND", f"Resource '{job_id}' of kind 'JOB' in region "
                                        f"'{p[3]}' in project '{p[1]}' does not exist.")
        return job

    def get_execution(self, job, eid):
        ex = self.executions.get(f"{job.name}/executions/{eid}")
        if ex is None:
            raise ApiError("NOT_FOUND", f"Resource '{eid}' of kind 'EXECUTION' in region "
                                        f"'{job.location}' in project '{job.project}' "
                                        "does not exist.")
        return ex

    def validate_job(self, res, path="job"):
        et = res.setdefault("template", {})
        tt = et.setdefault("template", {})
        containers = tt.get("containers", [])
        if not containers:
            raise invalid(f"{path}.template.template.containers: at least one container is required.")
        if len(containers) > 10:
            raise invalid(f"{path}.template.template.containers: at most 10 containers.")
        names = set()
        for i, c in enumerate(containers):
            if not c.get("image"):
                raise invalid(f"{path}.template.template.containers[{i}].image: Required.")
            if c.get("name"):
                if c["name"] in names:
                    raise invalid(f"{path}.template.template.containers[{i}].name: "
                                  f"duplicate container name '{c['name']}'.")
                names.add(c["name"])
            _check_env(c.get("env", []), f"{path}.template.template.containers[{i}].env")
            if len(c.get("args", [])) > 1000:
                raise invalid(f"{path}.template.template.containers[{i}].args: at most 1000 args.")
        tc = et.get("taskCount", 1)
        if not 0 <= tc <= 10000:
            raise invalid(f"{path}.template.task_count: must be between 1 and 10000.")
        if et.get("parallelism", 0) < 0:
            raise invalid(f"{path}.template.parallelism: must not be negative.")
        mr = tt.get("maxRetries", 3)
        if not 0 <= mr <= 10:
            raise invalid(f"{path}.template.template.max_retries: must be between 0 and 10.")
        _check_timeout(tt.get("timeout"), f"{path}.template.template.timeout")
        # Server-side defaults, as a job read back from the API shows them.
        if not et.get("taskCount"):
            et["taskCount"] = 1
        tt.setdefault("maxRetries", 3)
        tt.setdefault("timeout", "600s")

    def create_job(self, parent, job_id, body, validate_only):
        if not job_id:
            raise invalid("Invalid JSON payload: the job_id query parameter is required.")
        if not JOB_ID_RE.match(job_id):
            raise invalid(f"Invalid job id '{job_id}': a job id must start with a lowercase "
                          "letter, contain only lowercase letters, digits and hyphens, not "
                          "end with a hyphen, and be at most 49 characters long.")
        res = parse_msg(M_JOB, body, "job")
        self.validate_job(res)
        p = parent.split("/")
        with self.lock:
            name = f"{parent}/jobs/{job_id}"
            if name in self.jobs:
                raise ApiError("ALREADY_EXISTS", f"Resource '{job_id}' already exists.")
            t = now()
            for k in ("name", "uid", "generation", "createTime", "updateTime",
                      "deleteTime", "expireTime", "creator", "lastModifier",
                      "observedGeneration", "terminalCondition", "conditions",
                      "executionCount", "latestCreatedExecution", "reconciling",
                      "satisfiesPzs", "etag"):
                res.pop(k, None)
            res.update({"name": name, "uid": str(uuid.uuid4()), "generation": 1,
                        "createTime": rfc3339(t), "updateTime": rfc3339(t),
                        "creator": "cloudrun-fake@localhost",
                        "lastModifier": "cloudrun-fake@localhost",
                        "etag": new_etag()})
            res.setdefault("launchStage", "GA")
            tok = res.get("startExecutionToken") or res.get("runExecutionToken") or ""
            if tok and (len(job_id) + len(tok) >= 63 or
                        not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", tok)):
                raise invalid("job.start_execution_token: the sum of job name and token "
                              "length must be fewer than 63 characters; lower-case "
                              "letters, digits and hyphens.")
            job = Job(p[1], p[3], job_id, res)
            if validate_only:
                op = self.new_op(p[1], p[3], M_JOB, job.canonical)
                op.finish(M_JOB, job.canonical())
                return op
            self.jobs[name] = job
            op = self.new_op(p[1], p[3], M_JOB, job.canonical)

            def ready():
                if not job.deleted:
                    job.ready = True
                    job.ready_time = now()
                    if tok:
                        # start/runExecutionToken: the create starts one
                        # execution, named {jobId}-{token} (job.proto: "a
                        # unique string used as a suffix"; the exact name
                        # is unverified). A replayed create gets 409 above,
                        # so there is never a second one.
                        tt = json.loads(json.dumps(job.res["template"]["template"]))
                        self._new_execution(job, tt,
                                            job.res["template"].get("taskCount", 1),
                                            f"{job_id}-{tok}")
                op.finish(M_JOB, job.canonical())
            self.finish_op_later(op, ready)
            return self.reply_now(op)

    def patch_job(self, name, body, allow_missing, validate_only):
        res = parse_msg(M_JOB, body, "job")
        parts = name.split("/")
        with self.lock:
            job = self.jobs.get(name)
            if job is None:
                if allow_missing:
                    pass
                else:
                    self.get_job("/".join(parts[:4]), parts[5])
        if job is None:
            return self.create_job("/".join(parts[:4]), parts[5], body, validate_only)
        self.validate_job(res)
        with self.lock:
            if res.get("etag") and res["etag"] != job.res["etag"]:
                raise ApiError("ABORTED", f"Resource '{job.id}' has changed: etag mismatch.")
            if validate_only:
                op = self.new_op(job.project, job.location, M_JOB, job.canonical)
                op.finish(M_JOB, job.canonical())
                return op
            keep = {k: job.res[k] for k in ("name", "uid", "createTime", "creator") if k in job.res}
            for k in ("labels", "annotations", "client", "clientVersion", "launchStage",
                      "binaryAuthorization", "template"):
                if k in res:
                    job.res[k] = res[k]
                else:
                    job.res.pop(k, None)
            job.res.update(keep)
            job.res["generation"] = job.res.get("generation", 1) + 1
            job.res["updateTime"] = rfc3339(now())
            job.res["etag"] = new_etag()
            job.res.setdefault("launchStage", "GA")
            job.ready = False
            op = self.new_op(job.project, job.location, M_JOB, job.canonical)

            def ready():
                if not job.deleted:
                    job.ready = True
                    job.ready_time = now()
                op.finish(M_JOB, job.canonical())
            self.finish_op_later(op, ready)
            return op

    def delete_job(self, parent, job_id, etag, validate_only):
        with self.lock:
            job = self.get_job(parent, job_id)
            if etag and etag != job.res["etag"]:
                raise ApiError("ABORTED", f"Resource '{job_id}' has changed: etag mismatch.")
            snap = job.canonical()
            snap["deleteTime"] = rfc3339(now())
            op = self.new_op(job.project, job.location, M_JOB, lambda: snap)
            if validate_only:
                op.finish(M_JOB, snap)
                return op
            job.deleted = True
            del self.jobs[job.name]
            for ex in list(job.executions):
                self._delete_execution(ex)
            self.finish_op_later(op, lambda: op.finish(M_JOB, snap))
            return op

    def list_page(self, items, page_size, token, key):
        """items sorted; key(item) -> sortable cursor; token = last cursor."""
        if page_size < 0:
            raise invalid("page_size must not be negative.")
        size = page_size or self.c("default_page_size")
        size = min(size, self.c("max_page_size"))
        if token:
            try:
                after = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
            except (ValueError, binascii.Error, UnicodeDecodeError):
                raise invalid("Invalid page token.")
            items = [x for x in items if _after(key(x), after)]
        page = items[:size]
        nxt = None
        if len(items) > size:
            nxt = base64.urlsafe_b64encode(json.dumps(key(page[-1])).encode()).decode()
        return page, nxt

    # ---------------- run ----------------
    def run_job(self, parent, job_id, body, list_lag_ms=0):
        req = parse_msg(M_RUNREQ, body, "")
        with self.lock:
            job = self.get_job(parent, job_id)
            if req.get("etag") and req["etag"] != job.res["etag"]:
                raise ApiError("ABORTED", f"Resource '{job_id}' has changed: etag mismatch.")
            et = job.res["template"]
            tt = json.loads(json.dumps(et["template"]))
            ov = req.get("overrides", {})
            containers = tt["containers"]
            for i, co in enumerate(ov.get("containerOverrides", [])):
                where = f"overrides.container_overrides[{i}]"
                if co.get("name"):
                    match = [c for c in containers if c.get("name") == co["name"]]
                    if not match:
                        raise invalid(f"{where}.name: container '{co['name']}' not found in "
                                      "the job's template.")
                    c = match[0]
                else:
                    if len(containers) != 1 and i > 0:
                        raise invalid(f"{where}.name: required when the job has several "
                                      "containers.")
                    c = containers[0]
                if co.get("args"):
                    if co.get("clearArgs"):
                        raise invalid(f"{where}: args and clear_args are exclusive.")
                    c["args"] = list(co["args"])
                elif co.get("clearArgs"):
                    c.pop("args", None)
                if co.get("env"):
                    _check_env(co["env"], f"{where}.env")
                    env = c.get("env", [])
                    for e in co["env"]:
                        env = [x for x in env if x.get("name") != e.get("name")]
                        env.append(e)
                    _check_env(env, f"{where}.env")
                    c["env"] = env
            task_count = et.get("taskCount", 1)
            if "taskCount" in ov and ov["taskCount"]:
                task_count = ov["taskCount"]
                if not 1 <= task_count <= 10000:
                    raise invalid("overrides.task_count: must be between 1 and 10000.")
            if ov.get("timeout"):
                _check_timeout(ov["timeout"], "overrides.timeout")
                tt["timeout"] = ov["timeout"]
            if req.get("validateOnly"):
                fake_ex = Execution(self, job, f"{job_id}-{_suffix()}", tt, task_count,
                                    et.get("parallelism", 0), None)
                op = self.new_op(job.project, job.location, M_EXECUTION, fake_ex.canonical)
                op.finish(M_EXECUTION, fake_ex.canonical())
                return op
            ex = self._new_execution(job, tt, task_count, None, list_lag_ms)
            return self.reply_now(ex.run_op)

    def _new_execution(self, job, tt, task_count, eid=None, list_lag_ms=0):
        """A new execution of job from the canonical TaskTemplate tt (lock
        held). eid None: a generated suffix, as jobs.run gets."""
        et = job.res["template"]
        job_id = job.id
        containers = tt["containers"]
        env0 = {e["name"]: e.get("value", "") for e in containers[0].get("env", [])}
        fault = self.take_exec_fault(job_id, env0)
        while eid is None:
            eid = f"{job_id}-{_suffix()}"
            if f"{job.name}/executions/{eid}" in self.executions:
                eid = None
        ex = Execution(self, job, eid, tt, task_count, et.get("parallelism", 0), fault)
        ex.exec_env_id = env0.get("EXECUTION_ID")
        if list_lag_ms:
            ex.hidden_until = time.monotonic() + list_lag_ms / 1000.0
        self.executions[ex.name] = ex
        job.executions.append(ex)
        job.execution_count += 1
        job.latest = ex
        self._prune(job)
        ex.run_op = self.new_op(job.project, job.location, M_EXECUTION, ex.canonical)
        with self.stats.lock:
            self.stats.executions_created += 1
            if ex.exec_env_id is not None:
                self.stats.bump(self.stats.executions_by_eid, ex.exec_env_id)
        if fault and fault.get("hang") == "start":
            pass
        else:
            delay = self.c("start_latency_ms")
            if fault and "start_latency_ms" in fault:
                delay = fault["start_latency_ms"]
            ex.start_timer = self.loop.call_later(delay / 1000.0,
                                                  lambda: self._locked(self._start, ex))
        self.log(f"execution {ex.name} created (EXECUTION_ID={ex.exec_env_id}, "
                 f"tasks={task_count}, fault={fault})")
        return ex

    def _prune(self, job):
        # done_count is an upper bound (removals elsewhere do not lower it),
        # so the scan (O(executions) per jobs.run) runs only when it can
        # find something: 10,000 in flight stay cheap.
        if job.done_count <= 1000:
            return
        done = [e for e in job.executions if e.state == "done" and not e.deleting]
        drop = done[:max(0, len(done) - 1000)]
        if drop:
            gone = set(id(e) for e in drop)
            job.executions = [e for e in job.executions if id(e) not in gone]
            for ex in drop:
                self.executions.pop(ex.name, None)
        job.done_count = len(done) - len(drop)

    def _locked(self, fn, *a):
        with self.lock:
            fn(*a)

    # All _underscore methods below run with self.lock held.
    def _start(self, ex):
        if ex.state != "pending" or ex.cancelling:
            return
        ex.state = "running"
        ex.start_time = now()
        ex.set_condition("ResourcesAvailable", "CONDITION_SUCCEEDED",
                         "Provisioned imported containers.", when=ex.start_time)
        ex.set_condition("Started", "CONDITION_SUCCEEDED", "Started deployed tasks.",
                         when=ex.start_time)
        ex.set_condition("Completed", "CONDITION_RECONCILING", when=ex.start_time)
        self._schedule(ex)

    def _schedule(self, ex):
        if ex.state != "running" or ex.cancelling:
            return
        limit = ex.parallelism or ex.task_count
        running = sum(1 for t in ex.tasks if t.state in ("starting", "running"))
        for t in ex.tasks:
            if running >= limit:
                break
            if t.state == "pending":
                self._start_attempt(t)
                running += 1

    def _start_attempt(self, t):
        ex = t.ex
        t.gen += 1
        gen = t.gen
        t.state = "starting"
        t.timed_out = False
        t.term_sent = False
        t.exit_code = None
        t.term_signal = None
        t.scheduled_time = t.scheduled_time or now()
        t.start_time = now()
        ex.update_time = t.start_time
        fault = ex.fault
        if ex.timeout_s and ex.timeout_s > 0:
            t.deadline = self.loop.call_later(
                ex.timeout_s, lambda: self._locked(self._on_timeout, t, gen))
        if "exit_code" in fault:
            t.state = "running"
            code = fault["exit_code"]
            self.loop.call_soon(lambda: self._locked(self._on_exit, t, gen, code, None))
            return
        if fault.get("hang") == "finish":
            t.state = "running"
            t.virtual = True
            return
        sim = self._simulated(t)
        try:
            argv, env, cwd, log_path = self._container_spec(t, sim is not None)
        except ApiError as e:
            t.state = "running"
            msg = e.message
            self.loop.call_soon(lambda: self._locked(self._on_exit, t, gen, 127, None, msg))
            return
        if sim is not None:
            self._start_simulated(t, gen, sim, env)
            return
        t.log_path = log_path
        self.spawner.submit(self._spawn, t, gen, argv, env, cwd, log_path)

    def _simulated(self, t):
        """The simulation of t's image (simulated_images), or None: a
        container with its own command always runs for real."""
        c = t.ex.template["containers"][0]
        if c.get("command"):
            return None
        with self.cfg_lock:
            return self.cfg["simulated_images"].get(c["image"])

    def _start_simulated(self, t, gen, sim, env):
        """A task attempt without a process (simulated.py): running at
        once, "virtual" as an injected hang is, so cancel and timeout end
        it without a signal; the simulation's exit code ends it otherwise."""
        t.state = "running"
        t.virtual = True
        with self.cfg_lock:
            host = self.cfg["storage_emulator_host"]
        host = env.get("STORAGE_EMULATOR_HOST") or host
        if self.sim is None:
            self.sim = simulated.SimRunner(self.loop, self.log)
        eid = t.ex.exec_env_id
        with self.stats.lock:
            self.stats.container_starts += 1
            if eid is not None:
                self.stats.bump(self.stats.starts_by_eid, eid)

        def wanted():
            return gen == t.gen and not t.terminal() and not t.cancel_requested

        def on_exit(code, msg):
            self.loop.call_soon(lambda: self._locked(self._sim_exit, t, gen, code, msg))
        self.sim.start(sim, env, host, wanted, on_exit)

    def _sim_exit(self, t, gen, code, msg):
        if gen != t.gen or t.terminal():
            return
        t.virtual = False
        if msg:
            self.log(f"task {t.id} attempt {t.attempt}: {msg}")
        self._on_exit(t, gen, code, None, msg if code else None)

    def _container_spec(self, t, simulated=False):
        ex = t.ex
        c = ex.template["containers"][0]
        with self.cfg_lock:
            images = dict(self.cfg["images"])
            executor = self.cfg["executor"]
            secrets = dict(self.cfg["secrets"])
            cr_env = self.cfg["cloud_run_env"]
        entry = images.get(c["image"]) or ([executor] if executor else None)
        if c.get("command"):
            argv = list(c["command"]) + list(c.get("args", []))
        elif entry or simulated:
            argv = list(entry or []) + list(c.get("args", []))
        else:
            raise ApiError("FAILED_PRECONDITION",
                           f"Application failed to start: image '{c['image']}' has no "
                           "entrypoint (start the fake with --executor, or set images "
                           "or the container's command).")
        env = dict(self.base_env)
        if cr_env:
            env.update({"CLOUD_RUN_JOB": ex.job.id, "CLOUD_RUN_EXECUTION": ex.id,
                        "CLOUD_RUN_TASK_INDEX": str(t.index),
                        "CLOUD_RUN_TASK_ATTEMPT": str(t.attempt),
                        "CLOUD_RUN_TASK_COUNT": str(ex.task_count)})
        for e in c.get("env", []):
            if "valueSource" in e:
                ref = e["valueSource"].get("secretKeyRef", {})
                sec = ref.get("secret", "")
                val = secrets.get(sec, secrets.get(sec.split("/")[-1]))
                if val is None:
                    raise ApiError("FAILED_PRECONDITION",
                                   f"Secret '{sec}' not found (configure secrets in the fake).")
                env[e["name"]] = val
            else:
                env[e["name"]] = e.get("value", "")
        cwd = c.get("workingDir") or "/"
        d = os.path.join(self.state_dir, "logs", ex.job.id, ex.id)
        log_path = os.path.join(d, f"task{t.index}-attempt{t.attempt}.log")
        self._fresh_filesystem(t, env)
        return argv, env, cwd, log_path

    def _fresh_filesystem(self, t, env):
        """Every Cloud Run task attempt starts from the image: nothing a
        previous container wrote is there. The fake cannot give a process
        its own root, so it gives each attempt a fresh, empty directory
        (state_dir/fs/...) standing for the container's writable layer and
        maps the container paths runpool writes into it: RUNPOOL_WORKSPACE
        (an absolute path: /workspace becomes AREA/workspace) and TMPDIR.
        A mount:PATH workspace is a volume, shared on purpose: left as it
        is. The area is removed when the attempt ends (_drop_filesystem)."""
        ws = env.get("RUNPOOL_WORKSPACE", "")
        if not self.c("fresh_filesystem"):
            return
        area = tempfile.mkdtemp(prefix=f"{t.ex.id}-t{t.index}a{t.attempt}-",
                                dir=self.fs_root)
        t.fs_area = area
        if ws.startswith("/"):
            env["RUNPOOL_WORKSPACE"] = area + os.path.normpath(ws)
        tmp = os.path.join(area, "tmp")
        os.mkdir(tmp, 0o1777)
        env["TMPDIR"] = tmp
        with self.stats.lock:
            self.stats.fs_areas += 1

    def _drop_filesystem(self, t):
        area, t.fs_area = getattr(t, "fs_area", None), None
        if area:
            # A command may leave directories without write permission.
            # os.walk lists a symlink to a directory among dirs: never
            # chmod through it (it may point outside the area).
            for root, dirs, _ in os.walk(area):
                for d in dirs:
                    p = os.path.join(root, d)
                    try:
                        if not os.path.islink(p):
                            os.chmod(p, 0o700)
                    except OSError:
                        pass
            shutil.rmtree(area, ignore_errors=True)

    def _spawn(self, t, gen, argv, env, cwd, log_path):
        """Runs in the spawn pool, without the model lock."""
        proc = None
        err = None
        with self.lock:
            if t.cancel_requested or gen != t.gen:
                # Cancelled before the container started: nothing to run.
                t.state = "running"
                self._drop_filesystem(t)
                self.loop.call_soon(lambda: self._locked(self._on_exit, t, gen, None, None))
                return
        try:
            os.makedirs(os.path.dirname(log_path), exist_ok=True)
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=log, close_fds=True,
                                        start_new_session=True)
        except OSError as e:
            err = f"Application failed to start: {argv[0]}: {e.strerror}"
        pidfd = None
        if proc is not None and self.pidfd_ok:
            try:
                pidfd = os.pidfd_open(proc.pid)
            except OSError:
                pidfd = None
        if proc is None:
            self._drop_filesystem(t)
        with self.lock:
            if proc is None:
                self.loop.call_soon(lambda: self._locked(self._on_exit, t, gen, 127, None, err))
                t.state = "running"
                return
            t.proc = proc
            t.state = "running"
            self.live.add(t)
            eid = t.ex.exec_env_id
            with self.stats.lock:
                self.stats.container_starts += 1
                if eid is not None:
                    self.stats.bump(self.stats.starts_by_eid, eid)
            if t.cancel_requested or t.timed_out or gen != t.gen:
                self._signal(t, signal.SIGTERM)
                t.term_sent = True
                self._arm_kill(t)
        self.log(f"task {t.id} attempt {t.attempt} started: pid {proc.pid}")
        if pidfd is not None:
            self.loop.call_soon(lambda: self.loop.add_reader(
                pidfd, lambda: self._reap(t, gen, proc, pidfd)))
        else:
            threading.Thread(target=self._wait_thread, args=(t, gen, proc),
                             daemon=True).start()

    def _reap(self, t, gen, proc, pidfd):
        self.loop.remove_reader(pidfd)
        os.close(pidfd)
        rc = proc.wait()
        self._finish_proc(t, gen, proc, rc)

    def _wait_thread(self, t, gen, proc):
        rc = proc.wait()
        self.loop.call_soon(lambda: self._finish_proc(t, gen, proc, rc))

    def _finish_proc(self, t, gen, proc, rc):
        # The group may still hold the command's children: they die with it,
        # as they would with the container.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self._drop_filesystem(t)
        with self.lock:
            self.live.discard(t)
            t.proc = None
            if rc < 0:
                self._on_exit(t, gen, 128 - rc, -rc)
            else:
                self._on_exit(t, gen, rc, None)

    def _signal(self, t, sig):
        if t.proc is not None:
            try:
                os.killpg(t.proc.pid, sig)
            except OSError:
                pass

    def _arm_kill(self, t):
        if t.kill_timer is None:
            gen = t.gen
            t.kill_timer = self.loop.call_later(
                self.c("cancel_grace_s"),
                lambda: self._locked(self._kill_now, t, gen))

    def _kill_now(self, t, gen):
        if gen == t.gen and t.proc is not None:
            self._signal(t, signal.SIGKILL)

    def _on_timeout(self, t, gen):
        if gen != t.gen or t.terminal() or t.state == "pending":
            return
        t.timed_out = True
        if t.virtual or (t.proc is None and t.state == "running"):
            t.virtual = False
            self._on_exit(t, gen, 137, 9)
            return
        if t.proc is not None:
            self._signal(t, signal.SIGTERM)
            t.term_sent = True
            self._arm_kill(t)
        # state "starting": _spawn sees timed_out and stops it.

    def _on_exit(self, t, gen, code, sig, message=None):
        if gen != t.gen or t.terminal():
            return
        ex = t.ex
        if t.deadline:
            t.deadline.cancel()
            t.deadline = None
        if t.kill_timer:
            t.kill_timer.cancel()
            t.kill_timer = None
        t.virtual = False
        t.exit_code = code
        t.term_signal = sig
        t.completion_time = now()
        ex.update_time = t.completion_time
        if t.cancel_requested:
            t.state = "cancelled"
            t.last_message = "The task was cancelled."
        elif code == 0 and not t.timed_out:
            t.state = "succeeded"
            t.last_message = None
        else:
            if t.timed_out:
                t.last_message = "The configured timeout was reached."
            elif message:
                t.last_message = message
            else:
                t.last_message = ("The container exited with an error."
                                  if sig is None else
                                  f"The container was terminated by signal {sig}.")
            self.log(f"task {t.id} attempt {t.attempt} failed: exit {code}"
                     f"{' (timeout)' if t.timed_out else ''}")
            if t.retried < ex.max_retries and not ex.cancelling:
                t.retried += 1
                ex.retried += 1
                t.attempt += 1
                t.state = "pending"
                self._schedule(ex)
                return
            t.state = "failed"
            if ex.failure_message is None:
                ex.failure_message = (f"Task {t.id} failed with message: {t.last_message}",
                                      t.timed_out)
        self._schedule(ex)
        self._maybe_finish(ex)

    def _cancel(self, ex):
        if ex.state == "done" or ex.cancelling:
            return
        ex.cancelling = True
        if ex.start_timer:
            ex.start_timer.cancel()
        ex.set_condition("Completed", "CONDITION_RECONCILING", "The execution is being cancelled.",
                         reason="CANCELLING")
        for t in ex.tasks:
            if t.terminal():
                continue
            t.cancel_requested = True
            if t.state == "pending":
                t.state = "cancelled"
                t.completion_time = now()
                t.last_message = "The task was cancelled."
            elif t.virtual:
                self._on_exit(t, t.gen, None, None)
            elif t.proc is not None:
                if not t.term_sent:
                    self._signal(t, signal.SIGTERM)
                    t.term_sent = True
                    self._arm_kill(t)
            # else "starting" (the spawn pool sees cancel_requested) or an
            # exit already queued (_on_exit sees cancel_requested).
        self._maybe_finish(ex)

    def _maybe_finish(self, ex):
        if ex.state == "done" or not all(t.terminal() for t in ex.tasks):
            return
        t_end = now()
        ex.state = "done"
        ex.job.done_count += 1
        ex.completion_time = t_end
        if ex.start_timer:
            ex.start_timer.cancel()
        c = ex.counts()
        if ex.cancelling:
            ex.outcome = "cancelled"
            ex.set_condition("Completed", "CONDITION_FAILED", "The execution was cancelled.",
                             reason="CANCELLED", when=t_end)
        elif c["failed"]:
            ex.outcome = "failed"
            msg, timed_out = ex.failure_message
            if c["failed"] > 1:
                msg = f"{c['failed']} tasks failed. {msg}"
            ex.set_condition("Completed", "CONDITION_FAILED", msg,
                             reason=None if timed_out else "NON_ZERO_EXIT_CODE", when=t_end)
        else:
            ex.outcome = "succeeded"
            secs = t_end - (ex.start_time or ex.create_time)
            ex.set_condition("Completed", "CONDITION_SUCCEEDED",
                             f"Execution completed successfully in {secs:.2f}s.", when=t_end)
        snap = ex.canonical()
        if ex.outcome == "failed":
            ex.run_op.finish(error=(self.c("run_failure_error_code"),
                                    ex.conditions[-1].get("message", "Execution failed.")))
        else:
            ex.run_op.finish(M_EXECUTION, snap)
        self.log(f"execution {ex.name} {ex.outcome}")
        if ex.deleting:
            self._remove(ex)
        for op in ex.waiting_ops:
            op.finish(M_EXECUTION, snap)
        ex.waiting_ops = []

    def _remove(self, ex):
        self.executions.pop(ex.name, None)
        if ex in ex.job.executions:
            ex.job.executions.remove(ex)

    def _delete_execution(self, ex):
        ex.deleting = True
        ex.delete_time = now()
        if ex.state == "done":
            self._remove(ex)
        else:
            self._cancel(ex)

    def cancel_execution(self, parent, job_id, eid, body):
        req = parse_msg(M_CANCELREQ, body, "")
        with self.lock:
            job = self.get_job(parent, job_id)
            ex = self.get_execution(job, eid)
            if req.get("etag") and req["etag"] != ex.etag:
                raise ApiError("ABORTED", f"Resource '{eid}' has changed: etag mismatch.")
            if ex.state == "done":
                raise ApiError("FAILED_PRECONDITION",
                               f"Execution '{eid}' has already completed and cannot be cancelled.")
            op = self.new_op(job.project, job.location, M_EXECUTION, ex.canonical)
            if req.get("validateOnly"):
                op.finish(M_EXECUTION, ex.canonical())
                return op
            ex.waiting_ops.append(op)
            self._cancel(ex)
            return op

    def delete_execution(self, parent, job_id, eid, etag, validate_only):
        with self.lock:
            job = self.get_job(parent, job_id)
            ex = self.get_execution(job, eid)
            if etag and etag != ex.etag:
                raise ApiError("ABORTED", f"Resource '{eid}' has changed: etag mismatch.")
            op = self.new_op(job.project, job.location, M_EXECUTION, ex.canonical)
            if validate_only:
                op.finish(M_EXECUTION, ex.canonical())
                return op
            was_done = ex.state == "done"
            self._delete_execution(ex)
            if was_done:
                snap = ex.canonical()
                op.finish(M_EXECUTION, snap)
            else:
                ex.waiting_ops.append(op)
            return op

    # ---------------- shutdown ----------------
    def kill_all(self):
        with self.lock:
            for t in list(self.live):
                self._signal(t, signal.SIGKILL)
        if self.own_state_dir:
            import shutil
            shutil.rmtree(self.state_dir, ignore_errors=True)


class _Counter:
    def __init__(self):
        self._n = 0
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            self._n += 1
            return self._n


def _after(k, after):
    if isinstance(k, list):
        return tuple(k) > tuple(after)
    return k > after


def _suffix():
    return "".join(random.choice(SUFFIX_ALPHABET) for _ in range(5))


ENV_NAME_RE = re.compile(r"^[^=\x00]+$")


def _check_env(env, where):
    if len(env) > 1000:
        raise invalid(f"{where}: at most 1000 environment variables.")
    seen = set()
    for i, e in enumerate(env):
        name = e.get("name", "")
        if not name or not ENV_NAME_RE.match(name) or len(name) > 32768:
            raise invalid(f"{where}[{i}].name: invalid environment variable name {name!r}.")
        if len(e.get("value", "").encode()) > 32768:
            raise invalid(f"{where}[{i}].value: longer than 32768 bytes.")
        if name in seen:
            raise invalid(f"{where}[{i}].name: duplicate environment variable '{name}'.")
        seen.add(name)


def _check_timeout(v, where):
    if v is None:
        return
    d = parse_duration(v)
    if d is None or d <= 0 or d > 168 * 3600:
        raise invalid(f"{where}: must be between 1s and 168h.")


# --------------------------------------------------------------------------
# HTTP

SEG = r"([^/:]+)"
PARENT = rf"^/v2/projects/{SEG}/locations/{SEG}"
ROUTE_TABLE = [
    ("jobs.list", "GET", re.compile(PARENT + r"/jobs$")),
    ("jobs.create", "POST", re.compile(PARENT + r"/jobs$")),
    ("jobs.get", "GET", re.compile(PARENT + rf"/jobs/{SEG}$")),
    ("jobs.patch", "PATCH", re.compile(PARENT + rf"/jobs/{SEG}$")),
    ("jobs.delete", "DELETE", re.compile(PARENT + rf"/jobs/{SEG}$")),
    ("jobs.run", "POST", re.compile(PARENT + rf"/jobs/{SEG}:run$")),
    ("executions.list", "GET", re.compile(PARENT + rf"/jobs/{SEG}/executions$")),
    ("executions.get", "GET", re.compile(PARENT + rf"/jobs/{SEG}/executions/{SEG}$")),
    ("executions.delete", "DELETE", re.compile(PARENT + rf"/jobs/{SEG}/executions/{SEG}$")),
    ("executions.cancel", "POST", re.compile(PARENT + rf"/jobs/{SEG}/executions/{SEG}:cancel$")),
    ("tasks.list", "GET", re.compile(PARENT + rf"/jobs/{SEG}/executions/{SEG}/tasks$")),
    ("tasks.get", "GET", re.compile(PARENT + rf"/jobs/{SEG}/executions/{SEG}/tasks/{SEG}$")),
    ("operations.list", "GET", re.compile(PARENT + r"/operations$")),
    ("operations.get", "GET", re.compile(PARENT + rf"/operations/{SEG}$")),
    ("operations.delete", "DELETE", re.compile(PARENT + rf"/operations/{SEG}$")),
    ("operations.wait", "POST", re.compile(PARENT + rf"/operations/{SEG}:wait$")),
]
SYSTEM_PARAMS = {"$alt", "alt", "key", "prettyPrint", "$prettyPrint", "fields", "$fields",
                 "quotaUser", "$.xgafv", "access_token", "oauth_token", "callback",
                 "$callback", "upload_protocol", "uploadType", "userIp", "$userIp",
                 "$outputDefaults"}
ROUTE_PARAMS = {
    "jobs.create": {"jobId", "validateOnly"},
    "jobs.list": {"pageSize", "pageToken", "showDeleted"},
    "jobs.patch": {"validateOnly", "allowMissing"},
    "jobs.delete": {"validateOnly", "etag"},
    "executions.list": {"pageSize", "pageToken", "showDeleted"},
    "executions.delete": {"validateOnly", "etag"},
    "tasks.list": {"pageSize", "pageToken", "showDeleted"},
    "operations.list": {"filter", "pageSize", "pageToken", "returnPartialSuccess"},
}
SNAKE = {"jobId": "job_id", "validateOnly": "validate_only", "pageSize": "page_size",
         "pageToken": "page_token", "showDeleted": "show_deleted",
         "allowMissing": "allow_missing", "returnPartialSuccess": "return_partial_success"}
CAMEL = {v: k for k, v in SNAKE.items()}


# --------------------------------------------------------------------------
# Partial responses: the `fields` system parameter
# (https://cloud.google.com/apis/docs/system-parameters). A selector is a
# comma-separated list of paths `a/b/c`, each optionally followed by a
# sub-selection `(x,y)` that applies to the last element; `*` selects every
# member. Repeated members apply the rest of the selection to each element.
# Names are checked against the response message (json or proto name, case
# sensitive); an unknown name or a syntax error is 400 INVALID_ARGUMENT
# "Invalid field selection ..." (the message Google's frontend gives, e.g.
# googleapis/google-api-dotnet-client#1444). Only 200 replies are trimmed.

LIST_REPLY = {
    "jobs.list": ("jobs", M_JOB), "executions.list": ("executions", M_EXECUTION),
    "tasks.list": ("tasks", M_TASK),
}
ROUTE_REPLY = {"jobs.get": M_JOB, "executions.get": M_EXECUTION, "tasks.get": M_TASK}
FIELDS_MAX = 8192  # longest selector the fake parses


def parse_fields(sel):
    """Selector text -> tree {name: subtree or None (= whole member)}."""
    if len(sel) > FIELDS_MAX:
        raise invalid("Invalid field selection: longer than the fake accepts")
    pos = 0

    def bad(what):
        raise invalid(f"Invalid field selection {sel[:pos + 1]!r}: {what} at "
                      f"offset {pos}")

    def name():
        nonlocal pos
        start = pos
        while pos < len(sel) and (sel[pos].isalnum() or sel[pos] in "_*"):
            pos += 1
        n = sel[start:pos]
        if not n or ("*" in n and n != "*"):
            bad("a field name expected")
        return n

    def merge(tree, key, sub):
        if key in tree and (tree[key] is None or sub is None):
            tree[key] = None
        elif key in tree:
            for k, v in sub.items():
                merge(tree[key], k, v)
        else:
            tree[key] = sub

    def selection(depth):
        nonlocal pos
        tree = {}
        while True:
            path = [name()]
            while pos < len(sel) and sel[pos] == "/":
                pos += 1
                path.append(name())
            sub = None
            if pos < len(sel) and sel[pos] == "(":
                pos += 1
                sub = selection(depth + 1)
                if pos >= len(sel) or sel[pos] != ")":
                    bad("')' expected")
                pos += 1
            for n in reversed(path[1:]):
                sub = {n: sub}
            merge(tree, path[0], sub)
            if pos < len(sel) and sel[pos] == ",":
                pos += 1
                continue
            if depth == 0 and pos < len(sel):
                bad("',' expected")
            return tree

    sel = sel.strip()
    if not sel:
        return None
    return selection(0)


def check_fields(tree, msg, where=""):
    """Raise INVALID_ARGUMENT for a name the message (a table name, or a
    dict name -> (kind, type) for list replies) does not define."""
    for n, sub in tree.items():
        if n == "*":
            if sub is not None:
                raise invalid(f"Invalid field selection {where}*: '*' takes no sub-selection")
            continue
        spec = (msg.get(n) if isinstance(msg, dict) else
                FIELDS.get(msg, {}).get(n) if msg else ("", "", "any", "", False, False))
        if spec is None:
            raise invalid(f"Invalid field selection {where}{n}")
        if sub is None:
            continue
        if spec[2] == "msg":
            check_fields(sub, spec[3], f"{where}{n}/")
        elif spec[2] != "any":
            raise invalid(f"Invalid field selection {where}{n}/{next(iter(sub))}")


def reply_msg(route):
    """The message a route's 200 reply is: a table name, a dict for list
    replies, None for operations (whose response type varies; names are
    not checked there)."""
    if route in LIST_REPLY:
        key, m = LIST_REPLY[route]
        return {key: ("", "", "msg", m, True, False),
                "nextPageToken": ("", "", "scalar", "string", False, False),
                "unreachable": ("", "", "scalar", "string", True, False)}
    return ROUTE_REPLY.get(route)


def apply_fields(obj, tree, msg=None):
    """Keep only the selected members of a rendered reply."""
    if isinstance(obj, list):
        return [apply_fields(x, tree, msg) for x in obj]
    if not isinstance(obj, dict):
        return obj
    if "*" in tree:
        return obj
    out = {}
    fields = FIELDS.get(msg, {}) if isinstance(msg, str) else (msg or {})
    for k, v in obj.items():
        sub, hit = None, False
        spec = fields.get(k)
        for n in (k, spec[1] if spec else None):
            if n is not None and n in tree:
                hit, sub = True, tree[n]
                break
        if not hit:
            continue
        out[k] = v if sub is None else apply_fields(v, sub, spec[3] if spec else None)
    return out


class LostReply(Exception):
    pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cloudrun-fake"
    sys_version = ""
    fake = None  # set by main

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        # Replies go out in one write (see _send); no Nagle delay either way.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PUT(self):
        self._handle("PUT")

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, code, obj, pretty=True):
        data = (json.dumps(obj, indent=2 if pretty else None) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Vary", "Origin, X-Origin, Referer")
        # Headers and body in one write: a separate small write for the body
        # would meet the client's delayed ACK (40 ms per reply).
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(data)
        self._record(code)   # before the reply: a client that reads
        self.flush_headers()  # /_fake/requests next must find this call
        return code

    def _record(self, status):
        """Log the API call being answered in stats.recent, once."""
        rec, self._rec = getattr(self, "_rec", None), None
        if rec is not None:
            rec["status"] = status
            with self.fake.stats.lock:
                self.fake.stats.recent.append(rec)

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _handle(self, method):
        fake = self.fake
        t0 = time.monotonic()
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        auth = "Authorization" in self.headers
        try:
            body_bytes = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        route, groups = "unknown", ()
        self._ftree = self._fsel = None
        if path.startswith("/_fake/"):
            route = "fake." + path[len("/_fake/"):]
        else:
            for name, m, rx in ROUTE_TABLE:
                if m != method:
                    continue
                mt = rx.match(path)
                if mt:
                    route, groups = name, mt.groups()
                    break
        with fake.stats.lock:
            fake.stats.bump(fake.stats.requests, f"{method} {route}")
            fake.stats.auth["present" if auth else "absent"] += 1
        qs = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        pretty = qs.get("prettyPrint", qs.get("$prettyPrint", ["true"]))[-1] != "false"
        int_enums = any("enum-encoding=int" in v for v in qs.get("$alt", []) + qs.get("alt", []))
        status = None
        self._rec = None if route.startswith("fake.") else {
            "method": method, "url": self.path, "route": route, "status": None,
            "authorization": auth}
        try:
            if route.startswith("fake."):
                status = self._fake_endpoint(method, route[5:], body_bytes)
                return
            if route == "unknown":
                raise ApiError("NOT_FOUND", f"The requested URL {path} was not found on "
                                            "this server.")
            fault = fake.take_fault(route, method, path)
            if fault and not fault["after"]:
                self._inject(fault)
                status = "drop" if fault["drop"] else fault["status"]
                return
            params = self._params(route, qs)
            fsel = qs.get("fields", qs.get("$fields", [None]))[-1]
            ftree = parse_fields(fsel) if fsel is not None else None
            if ftree:
                check_fields(ftree, reply_msg(route))
            self._ftree, self._fsel = ftree, fsel
            self._fault = fault
            body = {}
            if method in ("POST", "PATCH") and body_bytes.strip():
                try:
                    body = json.loads(body_bytes)
                except ValueError as e:
                    raise invalid(f"Invalid JSON payload received. {e}")
            result = self._dispatch(route, groups, params, body)
            if fault and fault["status"] == 200:
                with fake.stats.lock:
                    fake.stats.faults_injected += 1
            elif fault:
                self._inject(fault)
                status = "drop" if fault["drop"] else fault["status"]
                return
            if isinstance(result, Op):
                reply = _render_op(fake, result, int_enums)
            elif callable(result):
                reply = result(int_enums)
            else:
                reply = result
            if ftree and route == "executions.list":
                # The executions were trimmed one by one (cached): only the
                # page's own members are left to select.
                reply = {k: v for k, v in reply.items()
                         if k in ftree or "*" in ftree or
                         (k == "nextPageToken" and "next_page_token" in ftree)}
            elif ftree:
                reply = apply_fields(reply, ftree, reply_msg(route))
            status = self._send(200, reply, pretty)
        except ApiError as e:
            status = self._send(e.http, e.body(), pretty)
        except Exception as e:  # a bug: answer like Google's frontend would
            traceback.print_exc()
            status = self._send(500, ApiError("INTERNAL", f"Internal error: {e}").body(), pretty)
        finally:
            self._record(status)  # drops and injected faults
            with fake.stats.lock:
                fake.stats.bump(fake.stats.responses, str(status))
            fake.log(f"{method} {self.path} -> {status} ({route}, auth={'yes' if auth else 'no'}, "
                     f"{(time.monotonic() - t0) * 1000:.1f} ms)")

    def _inject(self, fault):
        with self.fake.stats.lock:
            self.fake.stats.faults_injected += 1
        if fault["drop"]:
            self._drop()
            return
        st = STATUS_OF_HTTP[fault["status"]]
        msg = fault["message"] or INJECTED_MESSAGE.get(st, "Injected error.")
        self._send(fault["status"], ApiError(st, msg, fault["status"]).body())

    def _params(self, route, qs):
        allowed = ROUTE_PARAMS.get(route, set())
        out = {}
        for k, vs in qs.items():
            key = CAMEL.get(k, k)
            if k in SYSTEM_PARAMS:
                continue
            if key not in allowed:
                raise invalid(f'Invalid JSON payload received. Unknown name "{k}": Cannot bind '
                              f"query parameter. Field '{k}' could not be found in request "
                              "message.")
            v = vs[-1]
            if key in ("pageSize",):
                try:
                    v = int(v)
                except ValueError:
                    raise invalid(f"Invalid value at '{SNAKE[key]}' (TYPE_INT32), \"{v}\"")
            elif key in ("validateOnly", "showDeleted", "allowMissing", "returnPartialSuccess"):
                if v not in ("true", "false", "1", "0", "True", "False"):
                    raise invalid(f"Invalid value at '{SNAKE[key]}' (TYPE_BOOL), \"{v}\"")
                v = v in ("true", "1", "True")
            out[key] = v
        return out

    def _dispatch(self, route, g, q, body):
        fake = self.fake
        if route in ("jobs.create", "jobs.list", "operations.list"):
            parent = f"projects/{g[0]}/locations/{g[1]}"
        if route == "jobs.create":
            return fake.create_job(parent, q.get("jobId", ""), body, q.get("validateOnly", False))
        if route == "jobs.list":
            with fake.lock:
                jobs = sorted((j for j in fake.jobs.values() if j.parent == parent),
                              key=lambda j: j.name)
                page, nxt = fake.list_page(jobs, q.get("pageSize", 0), q.get("pageToken"),
                                           lambda j: j.name)
                items = [j.canonical() for j in page]
            return lambda ie: _page("jobs", M_JOB, items, nxt, ie)
        if route.startswith(("jobs.", "executions.", "tasks.")):
            parent = f"projects/{g[0]}/locations/{g[1]}"
            job_id = g[2]
        if route == "jobs.get":
            with fake.lock:
                d = fake.get_job(parent, job_id).canonical()
            return lambda ie: render_msg(M_JOB, d, ie)
        if route == "jobs.patch":
            return fake.patch_job(f"{parent}/jobs/{job_id}", body, q.get("allowMissing", False),
                                  q.get("validateOnly", False))
        if route == "jobs.delete":
            return fake.delete_job(parent, job_id, q.get("etag"), q.get("validateOnly", False))
        if route == "jobs.run":
            f = getattr(self, "_fault", None)
            return fake.run_job(parent, job_id, body,
                                f["list_lag_ms"] if f else 0)
        if route == "executions.list":
            with fake.lock:
                if job_id == "-":
                    exs = [e for e in fake.executions.values() if e.job.parent == parent]
                else:
                    exs = list(fake.get_job(parent, job_id).executions)
                t = time.monotonic()
                exs = [e for e in exs if e.hidden_until <= t]
                exs.sort(key=lambda e: -e.seq)
                page, nxt = fake.list_page(exs, q.get("pageSize", 0), q.get("pageToken"),
                                           lambda e: -e.seq)
                items = []
                for e in page:
                    fp = e.fingerprint()
                    c = e._render_cache
                    items.append((e, fp, None if c is not None and c[0] == fp
                                  else e.canonical()))

            ftree = getattr(self, "_ftree", None)
            fsel = getattr(self, "_fsel", None)

            def one(e, fp, d, ie):
                r = e.rendered(fp, d, ie) if d is not None else e._cached_or_render(fp, ie)
                if not ftree:
                    return r
                # A sweep asks for the same fields of the same execution
                # many times: keep the trimmed copy until it changes.
                c = getattr(e, "_fields_cache", None)
                if c is not None and c[0] == (fp, ie, fsel):
                    return c[1]
                if "*" in ftree or "executions" not in ftree:
                    return r  # whole, or dropped with the page's member
                sub = ftree["executions"]
                t = r if sub is None else apply_fields(r, sub, M_EXECUTION)
                e._fields_cache = ((fp, ie, fsel), t)
                return t

            def reply(ie):
                out = {}
                if items:
                    out["executions"] = [one(e, fp, d, ie) for e, fp, d in items]
                if nxt:
                    out["nextPageToken"] = nxt
                return out
            return reply
        if route == "executions.get":
            with fake.lock:
                d = fake.get_execution(fake.get_job(parent, job_id), g[3]).canonical()
            return lambda ie: render_msg(M_EXECUTION, d, ie)
        if route == "executions.cancel":
            return fake.cancel_execution(parent, job_id, g[3], body)
        if route == "executions.delete":
            return fake.delete_execution(parent, job_id, g[3], q.get("etag"),
                                         q.get("validateOnly", False))
        if route in ("tasks.list", "tasks.get"):
            with fake.lock:
                ex = fake.get_execution(fake.get_job(parent, job_id), g[3])
                if route == "tasks.get":
                    ts = [t for t in ex.tasks if t.id == g[4]]
                    if not ts:
                        raise ApiError("NOT_FOUND", f"Resource '{g[4]}' of kind 'TASK' in "
                                                    f"region '{g[1]}' in project '{g[0]}' "
                                                    "does not exist.")
                    d = ex.task_canonical(ts[0])
                    return lambda ie: render_msg(M_TASK, d, ie)
                page, nxt = fake.list_page(list(ex.tasks), q.get("pageSize", 0),
                                           q.get("pageToken"), lambda t: t.index)
                items = [ex.task_canonical(t) for t in page]
            return lambda ie: _page("tasks", M_TASK, items, nxt, ie)
        if route == "operations.list":
            with fake.lock:
                ops = sorted((o for o in fake.ops.values() if o.parent == parent),
                             key=lambda o: o.seq)
                page, nxt = fake.list_page(ops, q.get("pageSize", 0), q.get("pageToken"),
                                           lambda o: o.seq)
            return lambda ie: _op_page(page, nxt, ie)
        if route in ("operations.get", "operations.delete", "operations.wait"):
            name = f"projects/{g[0]}/locations/{g[1]}/operations/{g[2]}"
            with fake.lock:
                op = fake.ops.get(name)
                if op is None:
                    raise ApiError("NOT_FOUND", f"Operation '{name}' not found.")
                if route == "operations.delete":
                    del fake.ops[name]
                    return {}
            if route == "operations.wait":
                timeout = 60.0
                if isinstance(body, dict) and body.get("timeout") is not None:
                    d = parse_duration(body["timeout"])
                    if d is None:
                        raise invalid(f"Invalid value at 'timeout' (type.googleapis.com/"
                                      f"google.protobuf.Duration), {json.dumps(body['timeout'])}")
                    timeout = min(max(d, 0.0), 60.0)
                op.event.wait(timeout)
            return lambda ie: _render_op(fake, op, ie)
        raise ApiError("NOT_FOUND", "Not found.")

    def _fake_endpoint(self, method, what, body_bytes):
        fake = self.fake
        if what == "config" and method == "POST":
            try:
                fake.apply_config(json.loads(body_bytes or b"{}"))
            except (ValueError, TypeError) as e:
                return self._send(400, {"error": str(e)})
            return self._send(200, fake.config_view())
        if what == "config" and method == "GET":
            return self._send(200, fake.config_view())
        if what == "stats" and method == "GET":
            st = fake.stats
            with fake.lock:
                running = sum(1 for e in fake.executions.values() if e.state != "done")
                live = len(fake.live)
                pids = sorted(t.proc.pid for t in fake.live if t.proc is not None)
            with st.lock:
                out = {
                    "uptime_s": round(time.monotonic() - st.started, 3),
                    "requests": dict(st.requests),
                    "responses_by_status": dict(st.responses),
                    "authorization": dict(st.auth),
                    "executions_created": st.executions_created,
                    "executions_by_execution_id": dict(st.executions_by_eid),
                    "container_starts": st.container_starts,
                    "filesystem_areas": st.fs_areas,
                    "container_starts_by_execution_id": dict(st.starts_by_eid),
                    "executions_not_done": running,
                    "live_processes": live,
                    "live_pids": pids,
                    "faults_injected": st.faults_injected,
                }
            out["simulated"] = (fake.sim.stats() if fake.sim is not None else
                                {"in_flight": 0, "started": 0, "records": 0})
            return self._send(200, out)
        if what == "executions" and method == "GET":
            with fake.lock:
                out = []
                for e in sorted(fake.executions.values(), key=lambda e: e.seq):
                    out.append({
                        "name": e.name, "state": e.state, "outcome": e.outcome,
                        "execution_id_env": e.exec_env_id, "fault": e.fault,
                        "tasks": [{"index": t.index, "state": t.state, "attempt": t.attempt,
                                   "exit_code": t.exit_code, "term_signal": t.term_signal,
                                   "pid": t.proc.pid if t.proc else None,
                                   "log": t.log_path} for t in e.tasks]})
            return self._send(200, {"executions": out})
        if what == "requests" and method == "GET":
            with fake.stats.lock:
                return self._send(200, {"requests": list(fake.stats.recent)})
        if what == "health":
            return self._send(200, {"ok": True})
        return self._send(404, {"error": f"unknown fake endpoint {method} /_fake/{what}"})


def _page(key, msg, items, nxt, int_enums):
    out = {}
    if items:
        out[key] = [render_msg(msg, d, int_enums) for d in items]
    if nxt:
        out["nextPageToken"] = nxt
    return out


def _render_op(fake, op, int_enums):
    with fake.lock:
        return op.render(int_enums)


def _op_page(ops, nxt, int_enums):
    out = {}
    if ops:
        out["operations"] = [op.render(int_enums) for op in ops]
    if nxt:
        out["nextPageToken"] = nxt
    return out


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True


def _kv(spec):
    """route=jobs.run,count=2,status=429 -> dict (numbers and 0/1 booleans
    converted; env.NAME=V goes into an "env" object)."""
    out = {}
    for item in spec.split(","):
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise ValueError(f"'{item}' is not KEY=VALUE")
        if k.startswith("env."):
            out.setdefault("env", {})[k[4:]] = v
        elif k in ("after", "drop"):
            out[k] = v.lower() in ("1", "true", "yes")
        elif re.fullmatch(r"-?\d+", v) and k in ("count", "status", "exit_code",
                                                 "start_latency_ms"):
            out[k] = int(v)
        else:
            out[k] = v
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake Cloud Run Admin API v2 (REST) for tests.")
    ap.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1; keep it on loopback)")
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    ap.add_argument("--port-file", help="write the base URL here (atomically) once listening")
    ap.add_argument("--executor", default=os.environ.get("RUNPOOL_EXECUTOR"),
                    help="entrypoint of every image without a mapping (runpool-executor)")
    ap.add_argument("--image", action="append", default=[], metavar="IMAGE=PATH",
                    help="entrypoint for one image (repeatable)")
    ap.add_argument("--start-latency-ms", type=int, default=0,
                    help="delay between jobs.run and the tasks starting")
    ap.add_argument("--op-latency-ms", type=int, default=100,
                    help="delay before jobs.create/patch/delete operations are done")
    ap.add_argument("--cancel-grace-s", type=float, default=10.0,
                    help="SIGTERM -> SIGKILL grace on cancel and timeout (Cloud Run: 10 s)")
    ap.add_argument("--state-dir", help="task logs go here (default: a temp dir, removed at exit)")
    ap.add_argument("--config", help="JSON (or @FILE) applied like POST /_fake/config")
    ap.add_argument("--fault", action="append", default=[], metavar="K=V,...",
                    help="request fault, e.g. route=jobs.run,count=2,status=429 or "
                         "route=jobs.run,after=1,drop=1 (repeatable; keys as in /_fake/config)")
    ap.add_argument("--exec-fault", action="append", default=[], metavar="K=V,...",
                    help="execution fault, e.g. execution_id=X,exit_code=3 or job=J,hang=start "
                         "(repeatable)")
    ap.add_argument("--simulate", action="append", default=[], metavar="IMAGE=MS",
                    help="IMAGE is simulated: no process; the fake writes the executor's "
                         "claim and record to Cloud Storage after MS ms (repeatable; "
                         "see simulated_images in README.md)")
    ap.add_argument("--no-cloud-run-env", action="store_true",
                    help="do not set CLOUD_RUN_JOB/EXECUTION/TASK_* in the tasks' env")
    ap.add_argument("--no-parent-watch", action="store_true",
                    help="keep running when the parent process exits")
    ap.add_argument("--quiet", action="store_true", help="no per-request log lines")
    args = ap.parse_args(argv)

    fake = Fake(args)
    if args.image:
        imgs = {}
        for spec in args.image:
            img, _, path = spec.partition("=")
            if not path:
                ap.error("--image wants IMAGE=PATH")
            imgs[img] = [path]
        fake.apply_config({"images": imgs})
    if args.simulate:
        sims = {}
        for spec in args.simulate:
            img, _, ms = spec.rpartition("=")
            if not img or not ms.isdigit():
                ap.error("--simulate wants IMAGE=MS")
            sims[img] = {"duration_ms": int(ms)}
        try:
            fake.apply_config({"simulated_images": sims})
        except ValueError as e:
            ap.error(f"--simulate: {e}")
    try:
        fake.apply_config({"faults": [_kv(x) for x in args.fault],
                           "exec_faults": [_kv(x) for x in args.exec_fault]})
    except (ValueError, TypeError) as e:
        ap.error(f"--fault/--exec-fault: {e}")
    if args.config:
        text = args.config
        if text.startswith("@"):
            with open(text[1:]) as f:
                text = f.read()
        try:
            fake.apply_config(json.loads(text))
        except (ValueError, TypeError) as e:
            ap.error(f"--config: {e}")

    Handler.fake = fake
    srv = Server((args.host, args.port), Handler)
    host, port = srv.server_address[:2]
    base = f"http://{host}:{port}"
    fake.loop.start()

    stopping = threading.Event()

    def stop(*_):
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=srv.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, stop)

    if not args.no_parent_watch:
        ppid = os.getppid()

        def watch():
            while not stopping.is_set():
                if os.getppid() != ppid:
                    fake.log("parent exited: stopping")
                    stop()
                    return
                time.sleep(0.5)
        threading.Thread(target=watch, daemon=True).start()

    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(base + "\n")
        os.replace(tmp, args.port_file)
    print(base, flush=True)
    fake.log(f"listening on {base} (executor={fake.c('executor')}, "
             f"state dir {fake.state_dir})")
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        fake.loop.stopping = True
        fake.kill_all()
        srv.server_close()
    fake.loop.join(timeout=2)
    # Daemon threads (a task's watcher, a request handler) may still be
    # writing to stderr: interpreter finalization would then abort with
    # "_enter_buffered_busy" (SIGABRT, 1 run in 4 of conformance.cloudrun).
    # Everything is on disk; flush and leave without finalizing.
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
