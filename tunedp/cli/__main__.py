"""``python -m tunedp.cli``: the same command line as the ``tunedp`` script (tests and benchmarks run it so)."""

from tunedp.cli.app import main

main()
