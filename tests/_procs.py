"""Find the processes of a test's job by an environment tag (no psutil): every process whose
/proc/<pid>/environ holds ``GLUONPOSE_TEST_TAG=<tag>``; zombies count as gone."""
import os
import time


def tagged_pids(tag):
    """pids of the live tagged processes."""
    return sorted(tagged_roles(tag))


def tagged_roles(tag):
    """{pid: DMLC_ROLE (or '') } of the live tagged processes."""
    needle = ("GLUONPOSE_TEST_TAG=%s" % tag).encode()
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                items = f.read().split(b"\0")
            if needle not in items:
                continue
            with open("/proc/%s/stat" % name, "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:   # gone, or not ours
            continue
        if state not in (b"Z", b"X"):
            role = [i.split(b"=", 1)[1] for i in items if i.startswith(b"DMLC_ROLE=")]
            found[int(name)] = role[0].decode() if role else ""
    return found


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
