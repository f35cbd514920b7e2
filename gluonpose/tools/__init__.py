"""The commands: ``gluonpose-train``, ``-test``, ``-ensemble``, ``-demo``, ``-export``, ``-convert``,
``-launch``, ``-benchmark`` (setup.py entry points) and ``scripts/*.py`` call the ``main(argv)`` of
these modules. Every command reports a user error as one ``error: ...`` line with exit status 2
(:mod:`gluonpose.utils.cli`)."""
