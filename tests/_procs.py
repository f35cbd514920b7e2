"""Find the processes of a test's job by an environment tag (no psutil): every process whose
/proc/<pid>/environ holds ``GLUONPOSE_TEST_TAG=<tag>``; zombies count as gone."""
import os
import time


def tagged_pids(tag):
    needle = ("GLUONPOSE_TEST_TAG=%s" % tag).encode()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open("/proc/%s/stat" % name, "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:   # gone, or not ours
            continue
        if state not in (b"Z", b"X"):
            pids.append(int(name))
    return pids


def wait_gone(tag, timeout):
    """Wait up to ``timeout`` s until no tagged process is left; return those still alive."""
    deadline = time.monotonic() + timeout
    while True:
        left = tagged_pids(tag)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def kill_tagged(tag):
    """Clean-up after a failed test: SIGKILL whatever is left."""
    import signal
    for pid in tagged_pids(tag):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
