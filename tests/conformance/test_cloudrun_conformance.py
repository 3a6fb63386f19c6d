"""Conformance of tests/fakes/cloudrun against Google's official client.

google-cloud-run (pinned in requirements.txt) with its REST transport,
AnonymousCredentials and client_options api_endpoint=http://127.0.0.1:PORT
drives the fake through everything runpool relies on. The fake is trusted
only as far as this file proves. Raw HTTP checks (urllib) cover what the
client hides: omitted defaults, int64 strings, enum encodings, error bodies.

Run: .tools/venv/bin/python -m pytest tests/conformance (CTest:
conformance.cloudrun).
"""
import datetime
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import run_v2
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FAKE_DIR = os.path.join(ROOT, "tests", "fakes", "cloudrun")
FAKE = os.path.join(FAKE_DIR, "cloudrun_fake.py")
TASK_SH = os.path.join(HERE, "cloudrun_task.sh")
PROJECT = "conf-proj"
LOCATION = "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
IMAGE = "europe-docker.pkg.dev/conf-proj/runpool/runpool-executor:test"
EXEC_NAME_RE = re.compile(
    rf"^{PARENT}/jobs/(?P<job>[a-z][-a-z0-9]*)/executions/(?P=job)-[a-z0-9]{{5}}$")
OP_NAME_RE = re.compile(rf"^{PARENT}/operations/[0-9a-f-]{{36}}$")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}Z$")
SENTINEL = "RP_CONFORMANCE_SENTINEL"

S = run_v2.Condition.State
R = run_v2.Condition.ExecutionReason


# --------------------------------------------------------------------------
# fixtures

class FakeProc:
    def __init__(self, tmp, extra_args=()):
        self.tmp = tmp
        self.port_file = os.path.join(tmp, "port")
        self.state_dir = os.path.join(tmp, "state")
        self.log_path = os.path.join(tmp, "fake.log")
        env = dict(os.environ)
        env[SENTINEL] = "must-not-reach-the-container"
        env["TMPDIR"] = os.path.join(tmp, "tmpdir")
        os.makedirs(env["TMPDIR"], exist_ok=True)
        self.fake_env = env
        self.log = open(self.log_path, "wb")
        # -I -S: no site-packages at all, so the fake runs on the standard
        # library alone (it would fail to start otherwise).
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", FAKE, "--port", "0",
             "--port-file", self.port_file, "--state-dir", self.state_dir,
             "--op-latency-ms", "100"] + list(extra_args),
            stdout=subprocess.PIPE, stderr=self.log, env=env)
        deadline = time.time() + 20
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("fake did not start: " + open(self.log_path).read())
            time.sleep(0.02)
        self.base = open(self.port_file).read().strip()
        self.stdout_line = self.proc.stdout.readline().decode().strip()
        self.host, self.port = self.base[len("http://"):].split(":")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
            self.log.close()

    # raw HTTP ---------------------------------------------------------
    def raw(self, method, path, body=None, headers=None):
        data = None if body is None else (body if isinstance(body, bytes)
                                          else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read()), r.headers
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read()), e.headers

    def config(self, **cfg):
        st, body, _ = self.raw("POST", "/_fake/config", cfg)
        assert st == 200, body
        return body

    def stats(self):
        st, body, _ = self.raw("GET", "/_fake/stats")
        assert st == 200
        return body


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    f = FakeProc(str(tmp_path_factory.mktemp("fake")))
    yield f
    pids = f.stats()["live_pids"]
    f.stop()
    # Everything it started is gone with it.
    for pid in pids:
        assert not _alive(pid), f"task process {pid} survived the fake"
    assert f.proc.returncode == 0


@pytest.fixture(autouse=True)
def _reset(fake):
    fake.config(clear_faults=True, clear_exec_faults=True, start_latency_ms=0,
                cancel_grace_s=10)
    yield


@pytest.fixture(scope="module")
def clients(fake):
    opts = ClientOptions(api_endpoint=fake.base)
    kw = dict(credentials=AnonymousCredentials(), transport="rest", client_options=opts)
    return (run_v2.JobsClient(**kw), run_v2.ExecutionsClient(**kw), run_v2.TasksClient(**kw))


@pytest.fixture
def out_dir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return str(d)


_job_n = [0]


def job_id(prefix):
    _job_n[0] += 1
    return f"{prefix}-{_job_n[0]}"


def make_job(env, max_retries=0, task_count=None, parallelism=None, timeout=None,
             command=None, args=None):
    c = run_v2.Container(
        name="main", image=IMAGE,
        command=command if command is not None else ["/bin/sh", TASK_SH],
        env=[run_v2.EnvVar(name=k, value=v) for k, v in env.items()])
    if args:
        c.args = args
    tt = run_v2.TaskTemplate(containers=[c])
    if max_retries is not None:
        tt.max_retries = max_retries
    if timeout is not None:
        tt.timeout = duration_pb2.Duration(seconds=timeout)
    et = run_v2.ExecutionTemplate(template=tt)
    if task_count is not None:
        et.task_count = task_count
    if parallelism is not None:
        et.parallelism = parallelism
    return run_v2.Job(template=et, labels={"app": "runpool-conformance"})


def create_job(jobs, jid, job):
    op = jobs.create_job(parent=PARENT, job=job, job_id=jid)
    return op, op.result(timeout=30)


def run(jobs, jid, env=None, timeout=None, task_count=None, args=None, clear_args=False):
    co = run_v2.RunJobRequest.Overrides.ContainerOverride(name="main")
    if env:
        co.env = [run_v2.EnvVar(name=k, value=v) for k, v in env.items()]
    if args:
        co.args = args
    if clear_args:
        co.clear_args = True
    ov = run_v2.RunJobRequest.Overrides(container_overrides=[co])
    if timeout is not None:
        ov.timeout = duration_pb2.Duration(seconds=timeout)
    if task_count is not None:
        ov.task_count = task_count
    return jobs.run_job(request=run_v2.RunJobRequest(name=f"{PARENT}/jobs/{jid}", overrides=ov))


def wait_done(execs, name, timeout=30):
    deadline = time.time() + timeout
    while True:
        ex = execs.get_execution(name=name)
        if ex.completion_time:
            return ex
        assert time.time() < deadline, f"execution {name} not done: {ex}"
        time.sleep(0.05)


def completed(ex):
    [c] = [c for c in ex.conditions if c.type_ == "Completed"]
    return c


def read_env(path):
    with open(path, "rb") as f:
        raw = f.read()
    return dict(x.decode().split("=", 1) for x in raw.split(b"\0") if x)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _ts(rfc3339):
    return datetime.datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def wait_until(pred, timeout=15, what="condition"):
    deadline = time.time() + timeout
    while not pred():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# --------------------------------------------------------------------------
# the fake's own ground rules

def test_schema_table_matches_the_pinned_client():
    """cloudrun_schema.py is generated from google-cloud-run's descriptors;
    regenerating it with the pinned client must give the committed file."""
    out = subprocess.run([sys.executable, os.path.join(FAKE_DIR, "gen_schema.py")],
                         check=True, capture_output=True, text=True).stdout
    with open(os.path.join(FAKE_DIR, "cloudrun_schema.py")) as f:
        assert f.read() == out, "regenerate tests/fakes/cloudrun/cloudrun_schema.py (gen_schema.py)"


def test_startup_contract(fake):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", fake.base)
    assert fake.stdout_line == fake.base
    cfg = fake.config()
    assert cfg["cancel_grace_s"] == 10  # Cloud Run's SIGTERM -> SIGKILL grace


# --------------------------------------------------------------------------
# jobs

def test_create_get_list_delete_job(fake, clients):
    jobs, _, _ = clients
    jid = job_id("crud")
    op, job = create_job(jobs, jid, make_job({"A": "1"}, max_retries=None))
    assert OP_NAME_RE.match(op.operation.name)
    assert isinstance(op.metadata, run_v2.Job) and op.metadata.name == f"{PARENT}/jobs/{jid}"
    assert job.name == f"{PARENT}/jobs/{jid}"
    assert job.generation == 1 and job.uid and job.etag
    assert job.terminal_condition.type_ == "Ready"
    assert job.terminal_condition.state == S.CONDITION_SUCCEEDED
    assert not job.reconciling
    # Server defaults, as the real API reads them back.
    tt = job.template.template
    assert tt.max_retries == 3
    assert tt.timeout.total_seconds() == 600
    assert job.template.task_count == 1
    assert tt.containers[0].image == IMAGE and tt.containers[0].env[0].name == "A"
    assert job.labels["app"] == "runpool-conformance"

    got = jobs.get_job(name=job.name)
    assert got.name == job.name and got.uid == job.uid
    assert got.execution_count == 0 and not got.latest_created_execution.name

    # list: three jobs, two per page, the pager follows nextPageToken
    more = [job_id("crud") for _ in range(2)]
    for j in more:
        create_job(jobs, j, make_job({}))
    before = fake.stats()["requests"].get("GET jobs.list", 0)
    names = [j.name for j in jobs.list_jobs(request={"parent": PARENT, "page_size": 2})]
    for j in [jid] + more:
        assert f"{PARENT}/jobs/{j}" in names
    pages = fake.stats()["requests"]["GET jobs.list"] - before
    assert pages == -(-len(names) // 2)  # ceil: every page fetched, no extra one

    dop = jobs.delete_job(name=job.name)
    deleted = dop.result(timeout=30)
    assert deleted.name == job.name and deleted.delete_time
    with pytest.raises(gexc.NotFound) as ei:
        jobs.get_job(name=job.name)
    assert ei.value.code == 404
    assert "does not exist" in ei.value.message
    for j in more:
        jobs.delete_job(name=f"{PARENT}/jobs/{j}").result(timeout=30)


def _status(exc):
    """The google.rpc status name of the error body the client received."""
    return exc.response.json()["error"]["status"]


def test_create_twice_is_already_exists(clients):
    """The REST transport picks the exception class from the HTTP code alone
    (google.api_core.exceptions.from_http_status): a 409 is Conflict, the
    base class of AlreadyExists and Aborted, whatever the body says; the
    body's status tells them apart."""
    jobs, _, _ = clients
    jid = job_id("dup")
    create_job(jobs, jid, make_job({}))
    with pytest.raises(gexc.Conflict) as ei:
        jobs.create_job(parent=PARENT, job=make_job({}), job_id=jid)
    assert type(ei.value) is gexc.Conflict
    assert ei.value.code == 409
    assert _status(ei.value) == "ALREADY_EXISTS"
    assert ei.value.message.endswith(f"Resource '{jid}' already exists.")


@pytest.mark.parametrize("bad", ["Upper", "1abc", "ends-", "a_b", "x" * 50])
def test_invalid_job_id_is_invalid_argument(clients, bad):
    jobs, _, _ = clients
    with pytest.raises(gexc.BadRequest) as ei:
        jobs.create_job(parent=PARENT, job=make_job({}), job_id=bad)
    assert ei.value.code == 400
    assert _status(ei.value) == "INVALID_ARGUMENT"


def test_job_id_limits_accepted(clients):
    jobs, _, _ = clients
    for jid in ("a", "a" + "b" * 47 + "c", "a-1"):
        _, job = create_job(jobs, jid, make_job({}))
        assert job.name.endswith("/jobs/" + jid)
        jobs.delete_job(name=job.name).result(timeout=30)


def test_update_job_bumps_generation(clients):
    jobs, _, _ = clients
    jid = job_id("upd")
    _, job = create_job(jobs, jid, make_job({"A": "1"}))
    job.template.template.containers[0].env = [run_v2.EnvVar(name="A", value="2")]
    updated = jobs.update_job(job=job).result(timeout=30)
    assert updated.generation == 2
    assert updated.template.template.containers[0].env[0].value == "2"
    assert updated.etag != job.etag


# --------------------------------------------------------------------------
# running

def test_run_with_overrides_succeeds(fake, clients, out_dir):
    jobs, execs, tasks = clients
    jid = job_id("ok")
    job_env = {"OUT_DIR": out_dir, "JOB_ONLY": "from-job", "SHARED": "job-value",
               "EXECUTION_ID": "placeholder"}
    create_job(jobs, jid, make_job(job_env, max_retries=0))
    op = run(jobs, jid, env={"SHARED": "override", "EXECUTION_ID": "exec-ok-1",
                             "COMMAND": "echo 'a b'\nexit 0", "EXIT_CODE": "0"}, timeout=30)
    # The reply: an Operation, not done, the Execution in metadata.
    assert OP_NAME_RE.match(op.operation.name)
    assert not op.operation.done
    meta = op.metadata
    assert isinstance(meta, run_v2.Execution)
    assert EXEC_NAME_RE.match(meta.name), meta.name
    assert meta.job == jid
    assert meta.reconciling
    assert completed(meta).state in (S.CONDITION_PENDING, S.CONDITION_RECONCILING)

    ex = wait_done(execs, meta.name)
    assert ex.name == meta.name
    assert ex.task_count == 1 and ex.succeeded_count == 1
    assert ex.failed_count == 0 and ex.cancelled_count == 0 and ex.running_count == 0
    assert completed(ex).state == S.CONDITION_SUCCEEDED
    assert not ex.reconciling
    assert ex.start_time and ex.completion_time >= ex.start_time
    types = [c.type_ for c in ex.conditions]
    assert {"ResourcesAvailable", "Started", "Completed"} <= set(types)
    # The execution's template carries the overrides.
    assert ex.template.timeout.total_seconds() == 30
    env = {e.name: e.value for e in ex.template.containers[0].env}
    assert env["SHARED"] == "override" and env["JOB_ONLY"] == "from-job"

    # The operation completes with the Execution as its response.
    result = op.result(timeout=30)
    assert isinstance(result, run_v2.Execution)
    assert result.name == meta.name and result.succeeded_count == 1
    assert op.operation.done

    # What the container got: exactly the job's env + overrides, PATH/HOME
    # of the fake, a TMPDIR in the attempt's own fresh filesystem area
    # (state/fs/..., removed when it ended), Cloud Run's own variables;
    # nothing else.
    eid = meta.name.rsplit("/", 1)[1]
    got = read_env(os.path.join(out_dir, f"{eid}.0.0.env"))
    tmpdir = got.pop("TMPDIR", "")
    assert tmpdir.startswith(os.path.join(fake.state_dir, "fs") + "/")
    assert tmpdir.endswith("/tmp") and not os.path.exists(tmpdir)
    expect = dict(job_env)
    expect.update({"SHARED": "override", "EXECUTION_ID": "exec-ok-1",
                   "COMMAND": "echo 'a b'\nexit 0", "EXIT_CODE": "0"})
    expect.update({k: fake.fake_env[k] for k in ("PATH", "HOME") if k in fake.fake_env})
    expect.update({"CLOUD_RUN_JOB": jid, "CLOUD_RUN_EXECUTION": eid,
                   "CLOUD_RUN_TASK_INDEX": "0", "CLOUD_RUN_TASK_ATTEMPT": "0",
                   "CLOUD_RUN_TASK_COUNT": "1"})
    assert got == expect
    assert SENTINEL not in got
    with open(os.path.join(out_dir, f"{eid}.0.0.cwd")) as f:
        assert f.read().strip() == "/"

    # Exactly one container start for that EXECUTION_ID.
    st = fake.stats()
    assert st["executions_by_execution_id"]["exec-ok-1"] == 1
    assert st["container_starts_by_execution_id"]["exec-ok-1"] == 1

    # jobs.get points at it.
    job = jobs.get_job(name=f"{PARENT}/jobs/{jid}")
    assert job.execution_count == 1
    assert job.latest_created_execution.name == meta.name
    assert (job.latest_created_execution.completion_status
            == run_v2.ExecutionReference.CompletionStatus.EXECUTION_SUCCEEDED)

    # tasks
    ts = list(tasks.list_tasks(parent=meta.name))
    assert [t.index for t in ts] == [0]
    assert ts[0].name.startswith(meta.name + "/tasks/")
    assert ts[0].last_attempt_result.exit_code == 0
    assert tasks.get_task(name=ts[0].name).index == 0


def test_failing_run_is_non_zero_exit_code(fake, clients, out_dir):
    jobs, execs, tasks = clients
    jid = job_id("fail")
    create_job(jobs, jid, make_job({"OUT_DIR": out_dir}, max_retries=0))
    op = run(jobs, jid, env={"EXIT_CODE": "3", "EXECUTION_ID": "exec-fail-1"})
    ex = wait_done(execs, op.metadata.name)
    assert ex.failed_count == 1 and ex.succeeded_count == 0 and ex.task_count == 1
    c = completed(ex)
    assert c.state == S.CONDITION_FAILED
    assert c.execution_reason == R.NON_ZERO_EXIT_CODE
    assert "failed" in c.message
    assert ex.retried_count == 0
    # The run operation ends with an error (runpool must read the execution).
    with pytest.raises(gexc.GoogleAPICallError):
        op.result(timeout=30)
    assert op.exception() is not None
    assert op.operation.done and op.operation.HasField("error")
    assert not op.operation.HasField("response")
    [t] = list(tasks.list_tasks(parent=ex.name))
    assert t.last_attempt_result.exit_code == 3
    assert fake.stats()["container_starts_by_execution_id"]["exec-fail-1"] == 1
    job = jobs.get_job(name=f"{PARENT}/jobs/{jid}")
    assert (job.latest_created_execution.completion_status
            == run_v2.ExecutionReference.CompletionStatus.EXECUTION_FAILED)


@pytest.mark.parametrize("max_retries,starts", [(None, 4), (1, 2), (0, 1)])
def test_max_retries_default_three_and_honoured(fake, clients, out_dir, max_retries, starts):
    jobs, execs, tasks = clients
    jid = job_id("retry")
    _, job = create_job(jobs, jid, make_job({"OUT_DIR": out_dir, "EXIT_CODE": "5"},
                                            max_retries=max_retries))
    assert job.template.template.max_retries == (3 if max_retries is None else max_retries)
    eid = f"exec-retry-{jid}"
    op = run(jobs, jid, env={"EXECUTION_ID": eid})
    ex = wait_done(execs, op.metadata.name)
    assert ex.failed_count == 1
    assert ex.retried_count == starts - 1
    assert fake.stats()["container_starts_by_execution_id"][eid] == starts
    name = ex.name.rsplit("/", 1)[1]
    for attempt in range(starts):  # CLOUD_RUN_TASK_ATTEMPT counts up
        env = read_env(os.path.join(out_dir, f"{name}.0.{attempt}.env"))
        assert env["CLOUD_RUN_TASK_ATTEMPT"] == str(attempt)
    [t] = list(tasks.list_tasks(parent=ex.name))
    assert t.retried == starts - 1 and t.max_retries == (3 if max_retries is None else max_retries)


def test_retry_then_success(fake, clients, out_dir):
    """A task that fails once then succeeds: succeeded, retriedCount 1."""
    jobs, execs, _ = clients
    jid = job_id("flaky")
    cmd = ["/bin/sh", "-c", 'test "$CLOUD_RUN_TASK_ATTEMPT" -ge 1']
    create_job(jobs, jid, make_job({}, max_retries=2, command=cmd))
    ex = wait_done(execs, run(jobs, jid, env={"EXECUTION_ID": "flaky-1"}).metadata.name)
    assert ex.succeeded_count == 1 and ex.failed_count == 0 and ex.retried_count == 1
    assert completed(ex).state == S.CONDITION_SUCCEEDED


def test_task_timeout_kills_and_fails(fake, clients, out_dir):
    jobs, execs, tasks = clients
    jid = job_id("tmo")
    create_job(jobs, jid, make_job({"OUT_DIR": out_dir, "SLEEP_S": "60"}, max_retries=0))
    t0 = time.time()
    op = run(jobs, jid, env={"EXECUTION_ID": "exec-timeout"}, timeout=1)
    ex = wait_done(execs, op.metadata.name, timeout=20)
    took = time.time() - t0
    assert 1.0 <= took < 8, took
    assert ex.failed_count == 1
    c = completed(ex)
    assert c.state == S.CONDITION_FAILED and "timeout" in c.message
    name = ex.name.rsplit("/", 1)[1]
    with open(os.path.join(out_dir, f"{name}.0.0.pid")) as f:
        pid = int(f.read())
    assert not _alive(pid)
    [t] = list(tasks.list_tasks(parent=ex.name))
    assert t.last_attempt_result.term_signal == signal.SIGTERM
    with pytest.raises(gexc.GoogleAPICallError):
        op.result(timeout=10)


def test_multiple_tasks_with_parallelism(fake, clients, out_dir):
    jobs, execs, tasks = clients
    jid = job_id("multi")
    create_job(jobs, jid, make_job({"OUT_DIR": out_dir, "SLEEP_S": "0.3"},
                                   parallelism=2, task_count=1))
    op = run(jobs, jid, env={"EXECUTION_ID": "exec-multi"}, task_count=3)
    ex = wait_done(execs, op.metadata.name)
    assert ex.task_count == 3 and ex.succeeded_count == 3 and ex.parallelism == 2
    name = ex.name.rsplit("/", 1)[1]
    idx = sorted(read_env(os.path.join(out_dir, f"{name}.{i}.0.env"))["CLOUD_RUN_TASK_INDEX"]
                 for i in range(3))
    assert idx == ["0", "1", "2"]
    assert read_env(os.path.join(out_dir, f"{name}.0.0.env"))["CLOUD_RUN_TASK_COUNT"] == "3"
    assert [t.index for t in tasks.list_tasks(parent=ex.name)] == [0, 1, 2]
    assert op.result(timeout=30).succeeded_count == 3


def test_args_override_and_clear_args(fake, clients, out_dir):
    jobs, execs, _ = clients
    jid = job_id("args")
    cmd = ["/bin/sh", "-c", 'printf "%s|" "$@" >"$OUT_DIR/args.$CLOUD_RUN_EXECUTION"', "sh"]
    create_job(jobs, jid, make_job({"OUT_DIR": out_dir}, command=cmd, args=["job-arg"]))
    e1 = wait_done(execs, run(jobs, jid).metadata.name)
    e2 = wait_done(execs, run(jobs, jid, args=["x y", "z"]).metadata.name)
    e3 = wait_done(execs, run(jobs, jid, clear_args=True).metadata.name)

    def args_of(ex):
        with open(os.path.join(out_dir, "args." + ex.name.rsplit("/", 1)[1])) as f:
            return f.read()
    assert args_of(e1) == "job-arg|"
    assert args_of(e2) == "x y|z|"
    assert args_of(e3) == "|"
    assert list(e3.template.containers[0].args) == []


def test_executor_mapping_when_no_command(fake, clients, out_dir, tmp_path):
    """An image without a command runs the fake's executor (runpool-executor)
    with the container's args."""
    jobs, execs, _ = clients
    exe = tmp_path / "fake-executor"
    exe.write_text('#!/bin/sh\necho "$0 $*" >"$OUT_DIR/executor.$CLOUD_RUN_EXECUTION"\n')
    exe.chmod(0o755)
    fake.config(images={IMAGE + "-mapped": [str(exe)]})
    jid = job_id("mapped")
    job = make_job({"OUT_DIR": out_dir}, command=[], args=["--flag"])
    job.template.template.containers[0].image = IMAGE + "-mapped"
    create_job(jobs, jid, job)
    ex = wait_done(execs, run(jobs, jid).metadata.name)
    assert ex.succeeded_count == 1
    with open(os.path.join(out_dir, "executor." + ex.name.rsplit("/", 1)[1])) as f:
        assert f.read().strip() == f"{exe} --flag"


# --------------------------------------------------------------------------
# cancel / delete

def test_cancel_hanging_execution(fake, clients, out_dir):
    jobs, execs, _ = clients
    jid = job_id("cancel")
    create_job(jobs, jid, make_job({"OUT_DIR": out_dir, "SLEEP_S": "300", "ON_TERM": "record"}))
    op = run(jobs, jid, env={"EXECUTION_ID": "exec-cancel"})
    name = op.metadata.name
    eid = name.rsplit("/", 1)[1]
    pid_file = os.path.join(out_dir, f"{eid}.0.0.pid")
    wait_until(lambda: os.path.exists(pid_file), what="task start")
    ex = execs.get_execution(name=name)
    assert ex.running_count == 1 and not ex.completion_time and ex.reconciling
    cop = execs.cancel_execution(name=name)
    assert isinstance(cop.metadata, run_v2.Execution) and cop.metadata.name == name
    cancelled = cop.result(timeout=30)
    assert cancelled.cancelled_count == 1 and cancelled.succeeded_count == 0
    assert cancelled.failed_count == 0 and cancelled.running_count == 0
    c = completed(cancelled)
    assert c.state == S.CONDITION_FAILED and c.execution_reason == R.CANCELLED
    # SIGTERM came first (the trap ran), the process is gone.
    assert os.path.exists(os.path.join(out_dir, f"{eid}.0.0.term"))
    with open(pid_file) as f:
        assert not _alive(int(f.read()))
    # The run operation completes WITHOUT error: the response is the
    # cancelled Execution (runpool must look at the counts/conditions).
    res = op.result(timeout=10)
    assert res.cancelled_count == 1
    job = jobs.get_job(name=f"{PARENT}/jobs/{jid}")
    assert (job.latest_created_execution.completion_status
            == run_v2.ExecutionReference.CompletionStatus.EXECUTION_CANCELLED)
    # Cancelling a finished execution is refused.
    with pytest.raises(gexc.BadRequest) as ei:
        execs.cancel_execution(name=name)
    assert _status(ei.value) == "FAILED_PRECONDITION"


def test_cancel_escalates_to_sigkill_after_grace(fake, clients, out_dir):
    jobs, execs, _ = clients
    fake.config(cancel_grace_s=2)
    jid = job_id("stubborn")
    create_job(jobs, jid, make_job({"OUT_DIR": out_dir, "SLEEP_S": "300", "ON_TERM": "ignore"}))
    op = run(jobs, jid)
    name = op.metadata.name
    pid_file = os.path.join(out_dir, name.rsplit("/", 1)[1] + ".0.0.pid")
    wait_until(lambda: os.path.exists(pid_file), what="task start")
    with open(pid_file) as f:
        pid = int(f.read())
    t0 = time.time()
    execs.cancel_execution(name=name)
    time.sleep(1)
    assert _alive(pid), "SIGTERM is ignored: it must survive until the grace ends"
    ex = wait_done(execs, name, timeout=15)
    took = time.time() - t0
    assert 1.9 <= took < 6, took
    assert not _alive(pid)
    assert completed(ex).execution_reason == R.CANCELLED


def test_delete_running_execution_then_404(fake, clients, out_dir):
    jobs, execs, _ = clients
    jid = job_id("delx")
    create_job(jobs, jid, make_job({"OUT_DIR": out_dir, "SLEEP_S": "300"}))
    op = run(jobs, jid)
    name = op.metadata.name
    pid_file = os.path.join(out_dir, name.rsplit("/", 1)[1] + ".0.0.pid")
    wait_until(lambda: os.path.exists(pid_file), what="task start")
    dop = execs.delete_execution(name=name)
    gone = dop.result(timeout=30)
    assert gone.name == name and gone.delete_time
    with pytest.raises(gexc.NotFound):
        execs.get_execution(name=name)
    with open(pid_file) as f:
        assert not _alive(int(f.read()))
    # A finished one is deleted at once.
    ex = wait_done(execs, run(jobs, jid, env={"SLEEP_S": ""}).metadata.name)
    execs.delete_execution(name=ex.name).result(timeout=10)
    with pytest.raises(gexc.NotFound):
        execs.get_execution(name=ex.name)


def test_delete_job_stops_its_executions(fake, clients, out_dir):
    jobs, execs, _ = clients
    jid = job_id("deljob")
    create_job(jobs, jid, make_job({"OUT_DIR": out_dir, "SLEEP_S": "300"}))
    name = run(jobs, jid).metadata.name
    pid_file = os.path.join(out_dir, name.rsplit("/", 1)[1] + ".0.0.pid")
    wait_until(lambda: os.path.exists(pid_file), what="task start")
    jobs.delete_job(name=f"{PARENT}/jobs/{jid}").result(timeout=30)
    with open(pid_file) as f:
        pid = int(f.read())
    wait_until(lambda: not _alive(pid), what="task killed")
    with pytest.raises(gexc.NotFound):
        execs.get_execution(name=name)


def test_list_executions_paged_and_across_jobs(fake, clients, out_dir):
    jobs, execs, _ = clients
    jid = job_id("lst")
    create_job(jobs, jid, make_job({"OUT_DIR": out_dir}))
    names = [run(jobs, jid).metadata.name for _ in range(5)]
    for n in names:
        wait_done(execs, n)
    listed = [e.name for e in execs.list_executions(
        request={"parent": f"{PARENT}/jobs/{jid}", "page_size": 2})]
    assert listed == list(reversed(names))  # newest first
    everywhere = {e.name for e in execs.list_executions(parent=f"{PARENT}/jobs/-")}
    assert set(names) <= everywhere
    with pytest.raises(gexc.NotFound):
        list(execs.list_executions(parent=f"{PARENT}/jobs/no-such-job"))


def test_partial_responses_with_fields(fake, clients, out_dir):
    """The `fields` system parameter: only the selected members come back
    (paths a/b, sub-selections a(b,c), '*'), names are checked against the
    reply message, a malformed selector is 400 INVALID_ARGUMENT and has no
    effect (the run it came with does not happen)."""
    jobs, execs, _ = clients
    jid = job_id("fld")
    create_job(jobs, jid, make_job({"OUT_DIR": out_dir}))
    names = [run(jobs, jid).metadata.name for _ in range(3)]
    for n in names:
        wait_done(execs, n)
    full_st, full, _ = fake.raw("GET", f"/v2/{names[0]}")
    assert full_st == 200 and "uid" in full and "template" in full
    sel = ("name,createTime,completionTime,conditions(type,state),"
           "template/containers/env(name,value)")
    st, part, _ = fake.raw("GET", f"/v2/{names[0]}?fields={urllib.parse.quote(sel)}")
    assert st == 200
    assert set(part) == {"name", "createTime", "completionTime", "conditions", "template"}
    assert part["name"] == full["name"] and part["createTime"] == full["createTime"]
    assert all(set(c) <= {"type", "state"} for c in part["conditions"])
    assert [c["type"] for c in part["conditions"]] == [c["type"] for c in full["conditions"]]
    assert set(part["template"]) == {"containers"}
    assert all(set(c) == {"env"} for c in part["template"]["containers"])
    assert part["template"]["containers"][0]["env"] == full["template"]["containers"][0]["env"]
    # The proto (snake_case) name selects too; the reply keeps JSON names.
    st, part, _ = fake.raw("GET", f"/v2/{names[0]}?fields=create_time")
    assert (st, part) == (200, {"createTime": full["createTime"]})
    st, part, _ = fake.raw("GET", f"/v2/{names[0]}?fields=*")
    assert (st, part) == (200, full)
    # Lists: the selection applies to each element; nextPageToken only if asked.
    base = f"/v2/{PARENT}/jobs/{jid}/executions?pageSize=2"
    st, page, _ = fake.raw("GET", base + "&fields=executions(name)")
    assert st == 200 and page == {"executions": [{"name": names[2]}, {"name": names[1]}]}
    st, page, _ = fake.raw("GET", base + "&fields=executions/name,nextPageToken")
    assert st == 200 and [e["name"] for e in page["executions"]] == names[:0:-1]
    st, page2, _ = fake.raw("GET", base + "&fields=executions(name)&pageToken="
                            + urllib.parse.quote(page["nextPageToken"]))
    assert st == 200 and page2 == {"executions": [{"name": names[0]}]}
    st, page, _ = fake.raw("GET", base + "&fields=nextPageToken")
    assert st == 200 and set(page) == {"nextPageToken"}
    # Errors: unknown members, a member of a scalar, bad syntax.
    for bad in ["bogus", "executions(bogus)", "executions(name", "executions)",
                "executions/name/x", "executions(,name)", "nextPageToken(x)"]:
        st, body, _ = fake.raw("GET", base + "&fields=" + urllib.parse.quote(bad))
        assert st == 400, bad
        assert body["error"]["status"] == "INVALID_ARGUMENT", bad
        assert body["error"]["message"].startswith("Invalid field selection"), bad
    st, body, _ = fake.raw("GET", f"/v2/{names[0]}?fields=Name")  # case-sensitive
    assert st == 400
    before = len(list(execs.list_executions(parent=f"{PARENT}/jobs/{jid}")))
    st, body, _ = fake.raw("POST", f"/v2/{PARENT}/jobs/{jid}:run?fields=metadata(", {})
    assert st == 400
    assert len(list(execs.list_executions(parent=f"{PARENT}/jobs/{jid}"))) == before
    # Error replies are never trimmed.
    st, body, _ = fake.raw("GET", f"/v2/{PARENT}/jobs/{jid}/executions/nope?fields=name")
    assert st == 404 and body["error"]["status"] == "NOT_FOUND"


# --------------------------------------------------------------------------
# operations

def test_operations_get_and_wait(fake, clients, out_dir):
    jobs, execs, _ = clients
    jid = job_id("ops")
    create_job(jobs, jid, make_job({"OUT_DIR": out_dir, "SLEEP_S": "0.5"}))
    op = run(jobs, jid)
    got = jobs.get_operation(operations_pb2.GetOperationRequest(name=op.operation.name))
    assert got.name == op.operation.name and not got.done
    t0 = time.time()
    waited = jobs.wait_operation(operations_pb2.WaitOperationRequest(
        name=op.operation.name, timeout=duration_pb2.Duration(seconds=20)))
    assert waited.done and time.time() - t0 < 10
    ex = run_v2.Execution.deserialize(waited.response.value)
    assert ex.succeeded_count == 1
    # wait with a short timeout returns early, not done (best effort).
    op2 = run(jobs, jid, env={"SLEEP_S": "3"})
    w2 = jobs.wait_operation(operations_pb2.WaitOperationRequest(
        name=op2.operation.name, timeout=duration_pb2.Duration(nanos=200_000_000)))
    assert not w2.done
    listed = jobs.list_operations(operations_pb2.ListOperationsRequest(name=PARENT))
    assert op.operation.name in {o.name for o in listed.operations}
    with pytest.raises(gexc.NotFound):
        jobs.get_operation(operations_pb2.GetOperationRequest(
            name=f"{PARENT}/operations/00000000-0000-0000-0000-000000000000"))
    op2.result(timeout=30)


# --------------------------------------------------------------------------
# errors and injected faults

def test_not_found_shapes(clients):
    jobs, execs, tasks = clients
    with pytest.raises(gexc.NotFound):
        jobs.get_job(name=f"{PARENT}/jobs/missing")
    with pytest.raises(gexc.NotFound):
        jobs.run_job(name=f"{PARENT}/jobs/missing")
    with pytest.raises(gexc.NotFound):
        jobs.delete_job(name=f"{PARENT}/jobs/missing")
    with pytest.raises(gexc.NotFound):
        execs.get_execution(name=f"{PARENT}/jobs/missing/executions/missing-abcde")


@pytest.mark.parametrize("status,exc", [
    (429, gexc.TooManyRequests), (500, gexc.InternalServerError),
    (503, gexc.ServiceUnavailable)])
def test_injected_errors_map_to_client_exceptions(fake, clients, status, exc):
    jobs, _, _ = clients
    jid = job_id("err")
    create_job(jobs, jid, make_job({}))
    fake.config(faults=[{"route": "jobs.get", "count": 2, "status": status}])
    for _ in range(2):
        with pytest.raises(exc) as ei:
            jobs.get_job(name=f"{PARENT}/jobs/{jid}")
        assert type(ei.value) is exc  # by HTTP code (see test_create_twice...)
        assert ei.value.code == status
    assert _status(ei.value) == {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                                 503: "UNAVAILABLE"}[status]
    if status == 429:
        assert "Quota exceeded" in ei.value.message
    assert jobs.get_job(name=f"{PARENT}/jobs/{jid}").name.endswith(jid)  # count used up


def test_error_before_action_does_not_run(fake, clients):
    jobs, _, _ = clients
    jid = job_id("before")
    create_job(jobs, jid, make_job({"EXECUTION_ID": "x"}, command=["/bin/true"]))
    fake.config(faults=[{"route": "jobs.run", "count": 1, "status": 429}])
    before = fake.stats()["executions_created"]
    with pytest.raises(gexc.TooManyRequests):
        run(jobs, jid, env={"EXECUTION_ID": "exec-429"})
    assert fake.stats()["executions_created"] == before
    assert "exec-429" not in fake.stats()["executions_by_execution_id"]
    assert jobs.get_job(name=f"{PARENT}/jobs/{jid}").execution_count == 0


def test_lost_reply_still_creates_the_execution(fake, clients):
    """jobs.run is not idempotent: with the reply lost, the execution exists;
    jobs.get's latestCreatedExecution finds it (Prefect's recovery)."""
    jobs, execs, _ = clients
    jid = job_id("lost")
    create_job(jobs, jid, make_job({}, command=["/bin/true"]))
    fake.config(faults=[{"route": "jobs.run", "count": 1, "after": True, "drop": True}])
    with pytest.raises(requests.exceptions.ConnectionError):
        run(jobs, jid, env={"EXECUTION_ID": "exec-lost"})
    st = fake.stats()
    assert st["executions_by_execution_id"]["exec-lost"] == 1
    job = jobs.get_job(name=f"{PARENT}/jobs/{jid}")
    assert job.execution_count == 1
    ex = wait_done(execs, job.latest_created_execution.name)
    assert ex.succeeded_count == 1
    env = {e.name: e.value for e in ex.template.containers[0].env}
    assert env["EXECUTION_ID"] == "exec-lost"

    # The same with a 503 after the action.
    fake.config(faults=[{"route": "jobs.run", "count": 1, "after": True, "status": 503}])
    with pytest.raises(gexc.ServiceUnavailable):
        run(jobs, jid, env={"EXECUTION_ID": "exec-lost-503"})
    assert fake.stats()["executions_by_execution_id"]["exec-lost-503"] == 1
    assert jobs.get_job(name=f"{PARENT}/jobs/{jid}").execution_count == 2


def test_504_after_create_with_list_lag(fake, clients):
    """D2: a 504 that comes after the execution was made, with the listing
    lagging behind: an empty executions.list right after proves nothing."""
    jobs, execs, _ = clients
    jid = job_id("lag")
    create_job(jobs, jid, make_job({}, command=["/bin/true"]))
    fake.config(faults=[{"route": "jobs.run", "count": 1, "after": True,
                         "status": 504, "list_lag_ms": 1500}])
    with pytest.raises(gexc.GatewayTimeout):
        run(jobs, jid, env={"EXECUTION_ID": "exec-lag"})
    assert fake.stats()["executions_by_execution_id"]["exec-lag"] == 1
    parent = f"{PARENT}/jobs/{jid}"
    assert [e.name for e in execs.list_executions(parent=parent)] == []
    time.sleep(1.8)
    listed = list(execs.list_executions(parent=parent))
    assert len(listed) == 1
    env = {e.name: e.value for e in listed[0].template.containers[0].env}
    assert env["EXECUTION_ID"] == "exec-lag"


def test_every_nth_request_faults(fake, clients):
    jobs, _, _ = clients
    jid = job_id("every")
    create_job(jobs, jid, make_job({}))
    fake.config(faults=[{"route": "jobs.get", "count": -1, "every": 3,
                         "status": 503}])
    got = []
    for _ in range(6):
        try:
            jobs.get_job(name=f"{PARENT}/jobs/{jid}")
            got.append(200)
        except gexc.ServiceUnavailable:
            got.append(503)
    fake.config(clear_faults=True)
    assert got == [200, 200, 503, 200, 200, 503]


def test_start_execution_token_creates_one_execution(fake, clients):
    """D1a: jobs.create with startExecutionToken starts the execution
    itself ({jobId}-{token}); a replayed create is 409 and starts none."""
    jobs, execs, _ = clients
    jid = job_id("tok")
    job = make_job({"EXECUTION_ID": "exec-tok"}, command=["/bin/true"])
    job.start_execution_token = "t1"
    create_job(jobs, jid, job)
    ex = wait_done(execs, f"{PARENT}/jobs/{jid}/executions/{jid}-t1")
    assert ex.succeeded_count == 1
    with pytest.raises(gexc.Conflict):
        jobs.create_job(parent=PARENT, job=job, job_id=jid)
    assert fake.stats()["executions_by_execution_id"]["exec-tok"] == 1
    assert jobs.get_job(name=f"{PARENT}/jobs/{jid}").execution_count == 1


def test_exec_faults_hang_and_forced_exit(fake, clients, out_dir):
    jobs, execs, tasks = clients
    jid = job_id("xf")
    create_job(jobs, jid, make_job({"OUT_DIR": out_dir}))
    fake.config(exec_faults=[{"execution_id": "never-starts", "hang": "start"},
                             {"execution_id": "never-ends", "hang": "finish"},
                             {"execution_id": "forced", "exit_code": 7}])
    a = run(jobs, jid, env={"EXECUTION_ID": "never-starts"}).metadata.name
    b = run(jobs, jid, env={"EXECUTION_ID": "never-ends"}).metadata.name
    cop = run(jobs, jid, env={"EXECUTION_ID": "forced"})
    assert not cop.operation.done  # never done in the reply, however fast it ends
    c = cop.metadata.name
    exc = wait_done(execs, c)
    assert exc.failed_count == 1 and completed(exc).execution_reason == R.NON_ZERO_EXIT_CODE
    [t] = list(tasks.list_tasks(parent=c))
    assert t.last_attempt_result.exit_code == 7
    time.sleep(0.5)
    exa, exb = execs.get_execution(name=a), execs.get_execution(name=b)
    assert not exa.start_time and exa.running_count == 0
    assert completed(exa).state == S.CONDITION_PENDING
    assert exb.start_time and exb.running_count == 1 and not exb.completion_time
    starts = fake.stats()["container_starts_by_execution_id"]
    assert "never-starts" not in starts and "never-ends" not in starts and "forced" not in starts
    for n in (a, b):
        done = execs.cancel_execution(name=n).result(timeout=10)
        assert done.cancelled_count == 1
        assert completed(done).execution_reason == R.CANCELLED


def test_start_latency(fake, clients, out_dir):
    jobs, execs, _ = clients
    jid = job_id("lat")
    create_job(jobs, jid, make_job({"OUT_DIR": out_dir}))
    fake.config(start_latency_ms=700)
    ex = wait_done(execs, run(jobs, jid).metadata.name)
    lag = ex.start_time.timestamp() - ex.create_time.timestamp()
    assert 0.65 <= lag < 3, lag


def test_secret_env_var(fake, clients, out_dir):
    jobs, execs, _ = clients
    fake.config(secrets={"db-password": "s3cret"})
    jid = job_id("sec")
    job = make_job({"OUT_DIR": out_dir})
    job.template.template.containers[0].env.append(run_v2.EnvVar(
        name="DB_PASSWORD", value_source=run_v2.EnvVarSource(
            secret_key_ref=run_v2.SecretKeySelector(
                secret=f"projects/{PROJECT}/secrets/db-password", version="latest"))))
    create_job(jobs, jid, job)
    ex = wait_done(execs, run(jobs, jid).metadata.name)
    env = read_env(os.path.join(out_dir, ex.name.rsplit("/", 1)[1] + ".0.0.env"))
    assert env["DB_PASSWORD"] == "s3cret"


# --------------------------------------------------------------------------
# raw wire format (what a C client parses)

def test_wire_format_of_a_running_operation(fake, clients, out_dir):
    jobs, execs, _ = clients
    jid = job_id("wire")
    create_job(jobs, jid, make_job({"OUT_DIR": out_dir, "SLEEP_S": "2"}))
    st, op, hdr = fake.raw("POST", f"/v2/{PARENT}/jobs/{jid}:run",
                           {"overrides": {"containerOverrides": [{"env": [
                               {"name": "EXECUTION_ID", "value": "wire-1"}]}],
                               "timeout": "120s"}},
                           headers={"Content-Type": "application/json",
                                    "Authorization": "Bearer test-token"})
    assert st == 200 and hdr["Content-Type"].startswith("application/json")
    assert "done" not in op and "response" not in op and "error" not in op
    md = op["metadata"]
    assert md["@type"] == "type.googleapis.com/google.cloud.run.v2.Execution"
    assert EXEC_NAME_RE.match(md["name"])
    assert md["reconciling"] is True
    assert md["generation"] == "1"          # int64 as a string
    assert md["taskCount"] == 1             # int32 as a number
    assert md["launchStage"] == "GA"        # enum by name
    assert md["template"]["timeout"] == "120s"
    assert md["template"]["maxRetries"] == 0  # oneof member: 0 is written
    for k in ("runningCount", "succeededCount", "failedCount", "cancelledCount",
              "retriedCount", "completionTime", "startTime"):
        assert k not in md, k              # defaults omitted
    assert TS_RE.match(md["createTime"])
    assert md["conditions"] == [{"type": "Completed", "state": "CONDITION_PENDING",
                                 "lastTransitionTime": md["conditions"][0]["lastTransitionTime"]}]
    # The same operation, while running, via operations.get.
    wait_until(lambda: fake.raw("GET", f"/v2/{md['name']}")[1].get("runningCount") == 1,
               what="running")
    st, ex, _ = fake.raw("GET", f"/v2/{md['name']}")
    assert ex["runningCount"] == 1 and "succeededCount" not in ex
    [cc] = [c for c in ex["conditions"] if c["type"] == "Completed"]
    assert cc["state"] == "CONDITION_RECONCILING"
    st, op2, _ = fake.raw("GET", f"/v2/{op['name']}")
    assert "done" not in op2 and op2["metadata"]["runningCount"] == 1
    # enum-encoding=int, as the official client asks for it.
    st, ex_int, _ = fake.raw("GET", f"/v2/{md['name']}?%24alt=json%3Benum-encoding%3Dint")
    assert ex_int["launchStage"] == 4
    assert {c["state"] for c in ex_int["conditions"]} <= {1, 2, 3, 4}
    # Done: done true, response = Execution, metadata still the Execution.
    wait_done(execs, md["name"])
    st, op3, _ = fake.raw("GET", f"/v2/{op['name']}")
    assert op3["done"] is True and "error" not in op3
    assert op3["response"]["@type"] == md["@type"]
    assert op3["response"]["succeededCount"] == 1
    assert TS_RE.match(op3["response"]["completionTime"])
    assert "reconciling" not in op3["response"]
    # Authorization is accepted (and counted), never checked.
    assert fake.stats()["authorization"]["present"] >= 1


def test_wire_format_of_errors(fake):
    st, body, _ = fake.raw("POST", f"/v2/{PARENT}/jobs?jobId=Bad_Id", {})
    assert st == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    assert body["error"]["code"] == 400
    job = {"template": {"template": {"containers": [{"image": IMAGE,
                                                     "command": ["/bin/true"]}]}}}
    st, _, _ = fake.raw("POST", f"/v2/{PARENT}/jobs?jobId=wire-dup", job)
    assert st == 200
    st, body, _ = fake.raw("POST", f"/v2/{PARENT}/jobs?jobId=wire-dup", job)
    assert (st, body) == (409, {"error": {"code": 409,
                                          "message": "Resource 'wire-dup' already exists.",
                                          "status": "ALREADY_EXISTS"}})
    st, body, _ = fake.raw("GET", f"/v2/{PARENT}/jobs/nope")
    assert st == 404 and body["error"]["status"] == "NOT_FOUND"
    st, body, _ = fake.raw("GET", "/v1/whatever")
    assert st == 404 and body["error"]["status"] == "NOT_FOUND"
    st, body, _ = fake.raw("PUT", f"/v2/{PARENT}/jobs/wire-dup", job)
    assert st == 404 and body["error"]["status"] == "NOT_FOUND"
    # Unknown fields and query parameters are rejected, like the real API.
    st, body, _ = fake.raw("POST", f"/v2/{PARENT}/jobs?jobId=wire-x",
                           {"template": {"bogus": 1}})
    assert st == 400 and 'Unknown name "bogus"' in body["error"]["message"]
    st, body, _ = fake.raw("GET", f"/v2/{PARENT}/jobs/wire-dup?bogus=1")
    assert st == 400 and "Cannot bind query parameter" in body["error"]["message"]
    st, body, _ = fake.raw("POST", f"/v2/{PARENT}/jobs/wire-dup:run", b"{not json")
    assert st == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    # Cloud Run's env limits: a value is at most 32768 bytes (runpool's
    # COMMAND can be longer: it cannot travel as one variable).
    def run_with(value):
        return fake.raw("POST", f"/v2/{PARENT}/jobs/wire-dup:run", {"overrides": {
            "containerOverrides": [{"env": [{"name": "COMMAND", "value": value}]}]}})
    st, body, _ = run_with("x" * 32769)
    assert st == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    st, body, _ = run_with("é" * 16385)  # bytes, not characters
    assert st == 400
    st, body, _ = run_with("x" * 32768)
    assert st == 200 and "done" not in body
    # Enums are accepted as numbers in requests (what the client sends).
    job2 = json.loads(json.dumps(job))
    job2["template"]["template"]["executionEnvironment"] = 2
    st, body, _ = fake.raw("POST", f"/v2/{PARENT}/jobs?jobId=wire-enum", job2)
    assert st == 200
    assert body["metadata"]["template"]["template"]["executionEnvironment"] == \
        "EXECUTION_ENVIRONMENT_GEN2"
    st, body, _ = fake.raw("GET", f"/v2/{PARENT}/jobs?prettyPrint=false&pageSize=1")
    assert st == 200 and "nextPageToken" in body and len(body["jobs"]) == 1


def test_how_the_official_client_talks(fake, clients):
    """What the REST transport really sends: plain http:// to the endpoint,
    the resource name unescaped in the path, $alt=json;enum-encoding=int on
    the API calls (not on the operations client's polling), no
    Authorization header with anonymous credentials."""
    jobs, _, _ = clients
    jid = job_id("talk")
    op = jobs.create_job(parent=PARENT, job=make_job({}), job_id=jid)
    op.result(timeout=30)
    jobs.get_job(name=f"{PARENT}/jobs/{jid}")
    st, body, _ = fake.raw("GET", "/_fake/requests")
    reqs = [r for r in body["requests"] if jid in r["url"] or op.operation.name in r["url"]]
    create = [r for r in reqs if r["route"] == "jobs.create"][-1]
    assert create["url"].startswith(f"/v2/{PARENT}/jobs?")
    assert f"jobId={jid}" in create["url"]
    assert "%24alt=json%3Benum-encoding%3Dint" in create["url"]
    get = [r for r in reqs if r["route"] == "jobs.get"][-1]
    assert get["url"] == f"/v2/{PARENT}/jobs/{jid}?%24alt=json%3Benum-encoding%3Dint"
    polls = [r for r in reqs if r["route"] == "operations.get"]
    assert polls and all("enum-encoding" not in r["url"] for r in polls)
    assert not any(r["authorization"] for r in reqs)


# --------------------------------------------------------------------------
# the real runpool-executor as the image's entrypoint

def _executor_path():
    bin_dir = os.environ.get("RP_BIN_DIR") or os.path.join(ROOT, "build", "bin")
    path = os.path.join(bin_dir, "runpool-executor")
    assert os.access(path, os.X_OK), (
        f"{path} not found: build runpool first (cmake --build build) or set RP_BIN_DIR")
    return path


def test_runpool_executor_as_the_container(fake, clients, tmp_path):
    """The job's image has no command: the fake runs runpool-executor with
    the job env + overrides, exactly what the worker's Cloud Run backend
    will send. Exit 0 = a result record exists; 2 = contract broken."""
    jobs, execs, tasks = clients
    fake.config(executor=_executor_path())
    state = tmp_path / "state"
    state.mkdir()
    jid = job_id("rpexec")
    create_job(jobs, jid, make_job({"RUNPOOL_STATE_URL": f"file://{state}"}, command=[]))
    op = run(jobs, jid, env={"EXECUTION_ID": "rp-e1", "SESSION_ID": "rp-s1",
                             "COMMAND": "echo hello from $SESSION_NAME; exit 4",
                             "COMMAND_ENV": json.dumps({"SESSION_NAME": "rp-s1"}),
                             "TIMEOUT": "30"})
    ex = op.result(timeout=60)
    assert ex.succeeded_count == 1  # the command failed, the executor did not
    with open(state / "executions" / "rp-e1" / "result.json") as f:
        rec = json.load(f)
    assert rec["status"] == "failed" and rec["exit_code"] == 4
    assert rec["stdout"] == "hello from rp-s1\n"
    assert fake.stats()["container_starts_by_execution_id"]["rp-e1"] == 1
    # A broken contract (no COMMAND): exit 2, a failed execution.
    op2 = run(jobs, jid, env={"EXECUTION_ID": "rp-e2", "SESSION_ID": "rp-s1",
                              "TIMEOUT": "30"})
    ex2 = wait_done(execs, op2.metadata.name)
    assert ex2.failed_count == 1
    assert completed(ex2).execution_reason == R.NON_ZERO_EXIT_CODE
    [t] = list(tasks.list_tasks(parent=ex2.name))
    assert t.last_attempt_result.exit_code == 2


# --------------------------------------------------------------------------
# command line, shutdown

def test_command_line_faults_and_shutdown(tmp_path):
    f = FakeProc(str(tmp_path), ["--fault", "route=jobs.get,count=1,status=503",
                                 "--exec-fault", "execution_id=cli-x,exit_code=4",
                                 "--start-latency-ms", "300", "--no-cloud-run-env",
                                 "--cancel-grace-s", "1"])
    try:
        cfg = f.config()
        assert cfg["start_latency_ms"] == 300 and cfg["cancel_grace_s"] == 1
        out = str(tmp_path / "out")
        os.mkdir(out)
        job = {"template": {"template": {"maxRetries": 0, "containers": [{
            "image": IMAGE, "command": ["/bin/sh", TASK_SH],
            "env": [{"name": "OUT_DIR", "value": out}]}]}}}
        st, op, _ = f.raw("POST", f"/v2/{PARENT}/jobs?jobId=cli", job)
        assert st == 200
        st, body, _ = f.raw("GET", f"/v2/{PARENT}/jobs/cli")
        assert st == 503 and body["error"]["status"] == "UNAVAILABLE"
        wait_until(lambda: f.raw("GET", f"/v2/{op['name']}")[1].get("done"), what="create")

        def run_raw(env):
            st, op, _ = f.raw("POST", f"/v2/{PARENT}/jobs/cli:run", {"overrides": {
                "containerOverrides": [{"env": [{"name": k, "value": v}
                                                for k, v in env.items()]}]}})
            assert st == 200, op
            return op["metadata"]["name"]
        forced = run_raw({"EXECUTION_ID": "cli-x"})
        sleeper = run_raw({"EXECUTION_ID": "cli-y", "SLEEP_S": "300", "ON_TERM": "ignore"})
        wait_until(lambda: f.raw("GET", "/v2/" + forced)[1].get("completionTime"), what="forced")
        ex = f.raw("GET", "/v2/" + forced)[1]
        assert ex["failedCount"] == 1
        lag = _ts(ex["startTime"]) - _ts(ex["createTime"])
        assert lag >= 0.29, lag
        # Without CLOUD_RUN_* the task script names its files "none.0.0.*".
        pid_file = os.path.join(out, "none.0.0.pid")
        wait_until(lambda: os.path.exists(pid_file), what="sleeper start")
        with open(pid_file) as fh:
            pid = int(fh.read())
        env = read_env(os.path.join(out, "none.0.0.env"))
        assert env["EXECUTION_ID"] == "cli-y"
        assert f.raw("GET", "/v2/" + sleeper)[1]["runningCount"] == 1
        assert not any(k.startswith("CLOUD_RUN_") for k in env)
        assert _alive(pid)
    finally:
        f.stop()
    assert f.proc.returncode == 0
    # SIGTERM to the fake: its tasks die with it (SIGKILL to their groups).
    wait_until(lambda: not _alive(pid), timeout=5, what="task killed at shutdown")


def test_stops_when_its_parent_exits(tmp_path):
    pf = str(tmp_path / "port")
    sh = subprocess.Popen(["/bin/sh", "-c", '"$0" -I -S -B "$1" --port 0 --port-file "$2" '
                           '--quiet & echo $!; sleep 3', sys.executable, FAKE, pf],
                          stdout=subprocess.PIPE)
    pid = int(sh.stdout.readline())
    wait_until(lambda: os.path.exists(pf), what="fake start")
    assert _alive(pid)
    sh.wait()
    sh.stdout.close()
    wait_until(lambda: not _alive(pid), timeout=10, what="fake exit after its parent")


# --------------------------------------------------------------------------
# load

def test_load_hundreds_in_flight_and_request_rate(fake, clients, out_dir):
    """300 executions in flight at once, each EXECUTION_ID started exactly
    once; then the plain request rate of executions.get."""
    jobs, _, _ = clients
    jid = job_id("load")
    create_job(jobs, jid, make_job({"SLEEP_S": "4"}, max_retries=0,
                                   command=["/bin/sh", "-c", 'sleep "$SLEEP_S"']))
    n = 300
    local = threading.local()

    def conn():
        if not hasattr(local, "c"):
            local.c = http.client.HTTPConnection(fake.host, int(fake.port), timeout=30)
        return local.c

    def call(method, path, body=None):
        c = conn()
        c.request(method, path, body=None if body is None else json.dumps(body),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        assert r.status == 200, data
        return json.loads(data)

    def run_one(i):
        op = call("POST", f"/v2/{PARENT}/jobs/{jid}:run",
                  {"overrides": {"containerOverrides": [{"env": [
                      {"name": "EXECUTION_ID", "value": f"load-{i}"}]}]}})
        return op["metadata"]["name"]

    t0 = time.time()
    with ThreadPoolExecutor(16) as pool:
        names = list(pool.map(run_one, range(n)))
    run_rate = n / (time.time() - t0)
    peak = 0
    deadline = time.time() + 60
    while True:
        st = fake.stats()
        peak = max(peak, st["live_processes"])
        if st["executions_not_done"] == 0:
            break
        assert time.time() < deadline, st
        time.sleep(0.1)

    # GET throughput over persistent connections.
    m = 3000
    t1 = time.time()
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: call("GET", "/v2/" + names[i % n]), range(m)))
    get_rate = m / (time.time() - t1)
    assert all(g["succeededCount"] == 1 for g in got)
    st = fake.stats()
    for i in range(n):
        assert st["executions_by_execution_id"][f"load-{i}"] == 1
        assert st["container_starts_by_execution_id"][f"load-{i}"] == 1
    print(f"\nfake throughput: jobs.run {run_rate:.0f}/s (16 clients), "
          f"executions.get {get_rate:.0f}/s (8 clients), peak {peak} task processes at once")
    assert peak >= 200, peak
    assert get_rate >= 200, get_rate
