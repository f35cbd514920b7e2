"""Run any Python worker inside :class:`~gluonpose.dist.failfast.WorkerRun`.

``python -m gluonpose.dist.worker SCRIPT [ARGS...]``, ``... -m MODULE [ARGS...]`` or
``... -c CODE [ARGS...]`` runs the program as ``python`` would (``__main__``, ``sys.argv``,
``sys.path[0]``), so a hand-written worker that raises, or exits non-zero, on one rank ends at
once with its traceback/message and exit code instead of hanging in the dist kvstore's shutdown
barrier. The launchers start every Python worker command this way (``gluonpose-launch
--no-fail-fast`` starts them as given).
"""
import os
import runpy
import sys

from .failfast import WorkerRun

USAGE = "usage: python -m gluonpose.dist.worker (SCRIPT | -m MODULE | -c CODE) [ARGS...]"


def _run(argv):
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    if argv[0] == "-m" and len(argv) > 1:
        sys.argv = [argv[1]] + argv[2:]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    elif argv[0] == "-c" and len(argv) > 1:
        sys.argv = ["-c"] + argv[2:]
        sys.path.insert(0, "")
        code = compile(argv[1], "<string>", "exec")
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})  # noqa: S102
    elif argv[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    else:
        sys.argv = list(argv)
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        runpy.run_path(argv[0], run_name="__main__")
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    with WorkerRun() as run:
        return run.finish(_run(argv))


if __name__ == "__main__":
    sys.exit(main())
