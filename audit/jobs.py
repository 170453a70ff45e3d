"""Long work started from the app without blocking or endangering the server: one module for all.

A job is a `python -m audit <command> ...` subprocess (never a fork of the caller: a child forked
from the Streamlit server inherits its signal handlers and its threads' locks, and hung the first
start in 3 of 7 tries). Its folder, `<workspace>/jobs/<name>/`, holds:

- `lock`: an exclusive `flock` the child holds for its whole life. The kernel drops it when the
  child dies however it dies (SIGKILL, OOM, power), so a lock is never stale, and two servers or
  browser tabs that start the same job at once run it once: the loser exits at once.
- `status.json`: `{"state", "done", "total", "message", "started", "updated", "finished",
  "pid", "error", "command"}`, rewritten atomically as the child reports progress. The app reads
  it to draw progress with elapsed time and to notice a stall (no progress for a while).
- `log.txt`: the child's stdout and stderr (why it failed, in full).

The child watches the process that started it (`MASK_AUDIT_PARENT_PID`) and interrupts itself
when that process is gone, so stopping the server (Ctrl-C, SIGTERM, even SIGKILL) stops its jobs
within about a second; the server also terminates its live jobs at exit and reaps every child
(no zombies). Commands need nothing special: `audit.cli.main` runs any command as a job when
`MASK_AUDIT_JOB_DIR` is set, and `TqdmProgress` forwards its progress to the job's status.
"""
from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from audit.file_io import write_atomic

JOB_DIR_ENV = "MASK_AUDIT_JOB_DIR"
PARENT_PID_ENV = "MASK_AUDIT_PARENT_PID"
LOCK_NAME = "lock"
STATUS_NAME = "status.json"
LOG_NAME = "log.txt"
# A job that reported nothing for this long is called stalled (the demo's slowest step, predicting
# 2,500 images, reports every batch of 64: a few seconds apart on 2 loaded cores).
STALL_SECONDS = 60.0
# How often the child checks that its parent still lives, and how long it waits after asking
# itself to stop before it exits hard.
PARENT_POLL_SECONDS = 0.5
STOP_GRACE_SECONDS = 5.0
# Progress is written at most this often (status.json is rewritten atomically each time).
STATUS_INTERVAL_SECONDS = 0.25
# audit.cli.main's exit code for an interrupted command (128 + SIGINT).
INTERRUPTED_EXIT_CODE = 130

# This process's own children: (Popen, job folder). Per process on purpose (not user data):
# the server must reap and, at exit, stop what it started.
_children: list[tuple[subprocess.Popen, Path]] = []
_children_lock = threading.Lock()


@dataclass(frozen=True)
class JobStatus:
    """What a job is doing, read from its folder.

    state: "idle" (never ran here), "starting" (started, the child has not reported yet),
    "running", "done", "failed" (the command said why: `error`), "interrupted" (the child died
    without finishing: killed, or the server stopped). Times are UNIX seconds.
    """

    state: str
    done: int = 0
    total: int = 0
    message: str = ""
    started: float | None = None
    updated: float | None = None
    finished: float | None = None
    error: str = ""
    command: str = ""

    @property
    def active(self) -> bool:
        return self.state in ("starting", "running")

    @property
    def fraction(self) -> float:
        return min(max(self.done / self.total, 0.0), 1.0) if self.total else 0.0

    def elapsed(self, now: float | None = None) -> float:
        if self.started is None:
            return 0.0
        end = self.finished if self.finished is not None and not self.active else (now or time.time())
        return max(0.0, end - self.started)

    def seconds_since_progress(self, now: float | None = None) -> float:
        last = self.updated or self.started
        return max(0.0, (now or time.time()) - last) if last is not None else 0.0

    def stalled(self, after: float = STALL_SECONDS, now: float | None = None) -> bool:
        return self.active and self.seconds_since_progress(now) > after


def job_dir(jobs_root: str | Path, name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad job name {name!r}")
    return Path(jobs_root) / name


def _lock_is_held(folder: Path) -> bool:
    """True while some process holds the job's flock (tested without taking it for long)."""
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _read_status_file(folder: Path) -> dict:
    try:
        data = json.loads((folder / STATUS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _own_child_alive(folder: Path) -> bool:
    _reap()
    with _children_lock:
        return any(proc.poll() is None and path == folder for proc, path in _children)


def job_status(folder: str | Path) -> JobStatus:
    """The job's state from its folder (see `JobStatus`); cheap enough to call on every rerun."""
    folder = Path(folder)
    data = _read_status_file(folder)
    fields = {k: data[k] for k in ("done", "total", "message", "started", "updated", "finished",
                                   "error", "command") if data.get(k) is not None}
    held = _lock_is_held(folder)
    state = data.get("state")
    if held:
        return JobStatus(state="running" if state == "running" else "starting", **fields)
    if _own_child_alive(folder):
        return JobStatus(state="starting", **fields)
    if state in ("done", "failed", "interrupted"):
        return JobStatus(state=state, **fields)
    if state in ("running", "starting"):
        return JobStatus(state="interrupted", **fields)
    return JobStatus(state="idle", **fields)


def start_job(folder: str | Path, argv: list[str], *, cwd: str | Path | None = None,
              module: str = "audit") -> JobStatus:
    """Start `python -m audit <argv...>` as the job in `folder` unless it is already active
    (`module`: another entry point that wraps its work in `run_command_as_job`, for tests).

    Returns at once with the job's status. The child gets a fresh interpreter (default signal
    handlers), no stdin, its output in `log.txt`, and stops by itself when this process is gone.
    """
    folder = Path(folder)
    status = job_status(folder)
    if status.active:
        return status
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_NAME).touch(exist_ok=True)
    from audit.workspace import REPO_ROOT

    env = dict(os.environ)
    env[JOB_DIR_ENV] = str(folder.resolve())
    env[PARENT_PID_ENV] = str(os.getpid())
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("PYTHONUNBUFFERED", "1")
    with open(folder / LOG_NAME, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", module, *argv], cwd=str(cwd or REPO_ROOT), env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                close_fds=True)
    with _children_lock:
        if not _children:
            atexit.register(stop_own_jobs)
        _children.append((proc, folder))
    return JobStatus(state="starting", started=time.time(), command=" ".join([f"python -m {module}", *argv]))


def _reap() -> None:
    """Collect this process's finished children (no `<defunct>` entries under the server)."""
    with _children_lock:
        _children[:] = [(p, f) for p, f in _children if p.poll() is None]


def stop_job(folder: str | Path, *, timeout: float = STOP_GRACE_SECONDS) -> None:
    """Stop this process's child running the job in `folder` (SIGTERM, then SIGKILL)."""
    folder = Path(folder)
    with _children_lock:
        procs = [p for p, f in _children if f == folder]
    _terminate(procs, timeout)
    _reap()


def stop_own_jobs(timeout: float = 3.0) -> None:
    """Terminate every job this process started and wait for them (runs at interpreter exit)."""
    with _children_lock:
        procs = [p for p, _f in _children]
    _terminate(procs, timeout)
    _reap()


def _terminate(procs: list[subprocess.Popen], timeout: float) -> None:
    for proc in procs:
        if proc.poll() is None:
            try:
                proc.terminate()
            except OSError:
                pass
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def log_tail(folder: str | Path, lines: int = 1) -> str:
    """The last non-empty lines of the job's log (why it failed), "" when there is none."""
    try:
        text = (Path(folder) / LOG_NAME).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    # tqdm redraws with carriage returns: the last state of a line is what follows the last \r
    rows = [row.rsplit("\r", 1)[-1].strip() for row in text.splitlines()]
    rows = [row for row in rows if row]
    return "\n".join(rows[-lines:])


# ----------------------------------------------------------------------------- the child's side

class JobReporter:
    """Held by the child for the job's life: the flock plus the status it writes.

    `acquired` is False when another process already runs this job (then report nothing).
    """

    def __init__(self, folder: str | Path, command: str = ""):
        self.folder = Path(folder)
        self.command = command
        self.acquired = False
        self._fd: int | None = None
        self._status: dict = {}
        self._last_write = 0.0

    def __enter__(self) -> "JobReporter":
        self.folder.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            return self
        self.acquired = True
        now = time.time()
        self._status = {"state": "running", "done": 0, "total": 0, "message": "starting", "started": now,
                        "updated": now, "finished": None, "pid": os.getpid(), "error": "",
                        "command": self.command}
        self._write(force=True)
        return self

    def progress(self, done: int, total: int, message: str = "") -> None:
        if not self.acquired:
            return
        changed = message != self._status.get("message") or (total and done >= total)
        self._status.update(done=int(done), total=int(total or 0), message=str(message), updated=time.time())
        self._write(force=bool(changed))

    def finish(self, *, error: str = "", interrupted: bool = False) -> None:
        if not self.acquired:
            return
        state = "interrupted" if interrupted else "failed" if error else "done"
        self._status.update(state=state, error=error, finished=time.time(), updated=time.time())
        self._write(force=True)

    def _write(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < STATUS_INTERVAL_SECONDS:
            return
        self._last_write = now
        text = json.dumps(self._status)
        write_atomic(self.folder / STATUS_NAME, lambda fh: fh.write(text.encode("utf-8")))

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.acquired and self._status.get("state") == "running":
            # Left without finish(): an interrupt (SIGTERM, Ctrl-C, the parent gone) or an error.
            if exc_type is None or issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
                self.finish(error="interrupted", interrupted=True)
            else:
                first = str(exc).strip().splitlines()
                self.finish(error=f"{exc_type.__name__}: {first[0] if first else ''}")
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None


_reporter: JobReporter | None = None


def current_reporter() -> JobReporter | None:
    """The running job's reporter in a job child (progress goes there too), else None."""
    return _reporter


@contextlib.contextmanager
def hold(folder: str | Path, command: str = ""):
    """Hold the job lock of `folder` for a command run from a terminal, so it never runs beside
    the app's copy of the same job; inside that very job (started by the app) the lock is already
    held. Yields an object with `acquired` and `progress(done, total, message)`."""
    folder = Path(folder)
    reporter = current_reporter()
    if reporter is not None and reporter.folder.resolve() == folder.resolve():
        yield reporter
        return
    with JobReporter(folder, command) as job:
        yield job
        job.finish()


def run_command_as_job(command_line: str, body) -> int:
    """`audit.cli.main`'s wrapper: run `body() -> exit code` as the job named by the environment.

    Outside a job (no MASK_AUDIT_JOB_DIR) it just calls `body`. Inside: takes the job's lock (a
    second copy exits 0 at once), restores default signal handling, watches the parent, records
    done/failed in status.json.
    """
    global _reporter
    folder = os.environ.get(JOB_DIR_ENV)
    if not folder:
        return body()
    _reset_signal_handlers()
    with JobReporter(folder, command_line) as reporter:
        if not reporter.acquired:
            print("this job is already running in another process; not starting a second copy", file=sys.stderr)
            return 0
        _reporter = reporter
        _watch_parent()
        try:
            code = body()
        finally:
            _reporter = None
        if code == INTERRUPTED_EXIT_CODE:
            reporter.finish(error="interrupted", interrupted=True)
        else:
            reporter.finish(error="" if code == 0 else (log_tail(folder) or f"exit code {code}"))
        return code


def _reset_signal_handlers() -> None:
    # A new interpreter has these already; set them anyway so nothing inherited can linger.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _watch_parent() -> None:
    """Interrupt this process (cleanly: finally blocks run) once the parent is gone; exit hard if
    that does not end it within the grace time."""
    try:
        parent = int(os.environ.get(PARENT_PID_ENV, "0"))
    except ValueError:
        return
    if parent <= 1:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(STOP_GRACE_SECONDS)
        os._exit(143)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
