"""``python -m cli``: the same as the ``hes`` command."""

from cli.main import main

main()
