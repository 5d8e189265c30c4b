"""``python -m rnnx``: the same as the ``rnnx`` command."""

from .cli import main

main()
