"""A stand-in job for tests/test_jobs.py: `python -m job_sleeper SECONDS [fail]`.

Reports progress once a tenth of a second through the job machinery (audit.jobs) the app's real
jobs use, then exits 0, or 3 with a message when asked to fail.
"""
import sys
import time

from audit import jobs


def body() -> int:
    seconds = float(sys.argv[1])
    steps = max(1, int(seconds * 10))
    for i in range(steps):
        reporter = jobs.current_reporter()
        if reporter is not None:
            reporter.progress(i + 1, steps, "sleeping")
        time.sleep(0.1)
    if sys.argv[2:] == ["fail"]:
        print("error: the sleeper was asked to fail", file=sys.stderr)
        return 3
    print("slept", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(jobs.run_command_as_job("python -m job_sleeper", body))
