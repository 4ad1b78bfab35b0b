"""``python -m hsikit`` — the same as the ``hsikit`` command."""

from hsikit.cli import main

main()
