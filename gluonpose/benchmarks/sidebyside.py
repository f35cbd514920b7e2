"""Side-by-side speed comparison: commands run interleaved (A, B, A, B, ...) for N rounds at one thread count.

Each command prints a line ``RESULT <what> samples/s: <number>``; the comparison reports every round's figure, the
median per command and the ratio of the medians. Interleaving puts both programs under the same machine load;
before each run the machine is given up to ``quiet_wait`` seconds to fall below ``quiet_cores`` busy cores (other
processes), and the busy cores seen during the run are reported with it.
"""
import os
import re
import statistics
import subprocess
import time

RESULT_RE = re.compile(r"^RESULT (?P<what>.*) samples/s: (?P<value>[-+0-9.eE]+)\s*$", re.M)


def _busy_jiffies():
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return values[0] + values[1] + values[2] + values[5] + values[6] + values[7]


def other_cores(seconds=1.0):
    """Cores kept busy by all processes over ``seconds`` (Linux ``/proc/stat``; 0 elsewhere)."""
    try:
        b0 = _busy_jiffies()
        time.sleep(seconds)
        return (_busy_jiffies() - b0) / os.sysconf("SC_CLK_TCK") / seconds
    except (OSError, ValueError):
        return 0.0


def parse_result(text):
    """The last ``RESULT ... samples/s: X`` figure of ``text`` as (what, float), or None."""
    found = list(RESULT_RE.finditer(text))
    if not found:
        return None
    return found[-1].group("what"), float(found[-1].group("value"))


def run_interleaved(commands, rounds, *, env=None, quiet_cores=0.3, quiet_wait=60.0, log=print):
    """Run ``commands`` = [(label, argv), ...] interleaved for ``rounds`` rounds.

    Returns {label: [figure per round]}; raises RuntimeError naming the command when one prints no figure.
    """
    figures = {label: [] for label, _ in commands}
    for r in range(rounds):
        for label, argv in commands:
            waited = time.time()
            while quiet_wait > 0 and other_cores() > quiet_cores and time.time() - waited < quiet_wait:
                pass
            try:
                b0 = _busy_jiffies()
            except OSError:
                b0 = None
            tic = time.time()
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                  check=False)
            wall = time.time() - tic
            result = parse_result(proc.stdout)
            if proc.returncode != 0 or result is None:
                raise RuntimeError("%s (exit %d) printed no RESULT line; its last output:\n%s"
                                   % (label, proc.returncode, proc.stdout[-1500:]))
            busy = ((_busy_jiffies() - b0) / os.sysconf("SC_CLK_TCK") / wall) if b0 is not None else float("nan")
            figures[label].append(result[1])
            log("round %d %-10s %8.3f samples/s  (%s; wall %.1f s, machine busy %.2f cores during the run)"
                % (r + 1, label, result[1], result[0], wall, busy))
    return figures


def summarize(figures, numerator, denominator):
    """(median per label, ratio numerator/denominator of the medians)."""
    medians = {label: statistics.median(v) for label, v in figures.items()}
    return medians, medians[numerator] / medians[denominator]
