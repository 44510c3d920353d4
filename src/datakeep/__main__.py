"""``python -m datakeep``: the same CLI as the ``datakeep`` script, for environments without it on PATH."""

from datakeep.cli.main import entry_point

entry_point()
