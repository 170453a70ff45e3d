"""audit/jobs.py: background work that is safe inside a server (no fork, one copy, dies with its
parent, reaped, stall and failure visible)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audit import jobs
from browser_support import pid_alive, wait_for

TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _tests_on_child_path(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    yield
    jobs.stop_own_jobs()


def _wait_until(predicate, timeout=30.0):
    return wait_for(predicate, timeout)


def test_a_job_runs_reports_progress_and_finishes(tmp_path):
    folder = tmp_path / "jobs" / "sleep"
    assert jobs.job_status(folder).state == "idle"
    status = jobs.start_job(folder, ["1.0"], module="job_sleeper")
    assert status.active
    assert _wait_until(lambda: jobs.job_status(folder).state == "running")
    assert _wait_until(lambda: jobs.job_status(folder).done > 0)
    running = jobs.job_status(folder)
    assert running.total == 10 and running.message == "sleeping" and running.elapsed() >= 0
    assert _wait_until(lambda: jobs.job_status(folder).state == "done")
    done = jobs.job_status(folder)
    assert done.fraction == 1.0 and not done.error
    assert jobs.log_tail(folder) == "slept"
    jobs._reap()
    assert not jobs._children  # reaped: no <defunct> child left


def test_a_failed_job_says_why_in_one_line(tmp_path):
    folder = tmp_path / "fail"
    jobs.start_job(folder, ["0.1", "fail"], module="job_sleeper")
    assert _wait_until(lambda: jobs.job_status(folder).state == "failed")
    assert jobs.job_status(folder).error == "error: the sleeper was asked to fail"


def test_two_starts_at_once_run_one_copy(tmp_path):
    folder = tmp_path / "once"
    jobs.start_job(folder, ["1.5"], module="job_sleeper")
    # A second server (its own registry of children) starting the same job while it runs: the second
    # child finds the lock taken and exits at once without touching the status.
    assert _wait_until(lambda: jobs.job_status(folder).state == "running")
    second = subprocess.run([sys.executable, "-m", "job_sleeper", "1.5"], capture_output=True, text=True,
                            env={**os.environ, jobs.JOB_DIR_ENV: str(folder)}, timeout=30)
    assert second.returncode == 0 and "already running" in second.stderr
    assert jobs.start_job(folder, ["1.5"], module="job_sleeper").active  # no new process either
    assert len(jobs._children) == 1
    assert _wait_until(lambda: jobs.job_status(folder).state == "done")


def test_a_killed_job_reads_as_interrupted_and_starts_again(tmp_path):
    folder = tmp_path / "killed"
    jobs.start_job(folder, ["30"], module="job_sleeper")
    assert _wait_until(lambda: jobs.job_status(folder).state == "running")
    proc = jobs._children[0][0]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert jobs.job_status(folder).state == "interrupted"
    assert jobs.start_job(folder, ["0.2"], module="job_sleeper").active
    assert _wait_until(lambda: jobs.job_status(folder).state == "done")


def test_sigterm_stops_a_job_cleanly(tmp_path):
    folder = tmp_path / "term"
    jobs.start_job(folder, ["30"], module="job_sleeper")
    assert _wait_until(lambda: jobs.job_status(folder).state == "running")
    t0 = time.monotonic()
    jobs.stop_job(folder)
    assert time.monotonic() - t0 < 5
    status = jobs.job_status(folder)
    assert status.state == "interrupted"  # the next start resumes it, no "Try again" needed


def test_the_job_stops_when_its_parent_dies(tmp_path):
    """The server SIGKILLed mid-job: its job notices within about a second and stops."""
    folder = tmp_path / "orphan"
    parent_code = (
        "import sys, time; from audit import jobs; "
        "jobs.start_job(sys.argv[1], ['60'], module='job_sleeper'); print('started', flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", parent_code, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "started"
        assert _wait_until(lambda: jobs.job_status(folder).state == "running")
        child_pid = jobs._read_status_file(folder)["pid"]
        parent.kill()
        parent.wait()
        assert _wait_until(lambda: not pid_alive(child_pid), timeout=10), "the orphaned job kept running"
        assert jobs.job_status(folder).state == "interrupted"
    finally:
        parent.kill()


def test_stall_is_noticed():
    now = time.time()
    status = jobs.JobStatus(state="running", started=now - 300, updated=now - 120, done=5, total=10)
    assert status.stalled(after=60, now=now) and status.seconds_since_progress(now) == pytest.approx(120)
    assert not jobs.JobStatus(state="running", started=now, updated=now).stalled(now=now)
    assert not jobs.JobStatus(state="done", started=now - 300, updated=now - 200).stalled(now=now)


def test_bad_job_names_are_refused(tmp_path):
    for name in ("", "../x", ".hidden", "a/b"):
        with pytest.raises(ValueError):
            jobs.job_dir(tmp_path, name)


def test_no_fork_start_method_in_the_app_code():
    root = TESTS.parent
    sources = [p for folder in ("audit", "pages", "ui") for p in (root / folder).rglob("*.py")] + [root / "app.py"]
    offenders = [str(p) for p in sources if '"fork"' in p.read_text() or "os.fork(" in p.read_text()]
    assert not offenders

