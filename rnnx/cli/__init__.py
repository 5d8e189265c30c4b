"""The ``rnnx`` command line, one module a command: :mod:`~rnnx.cli.check`,
:mod:`~rnnx.cli.train`, :mod:`~rnnx.cli.predict`, :mod:`~rnnx.cli.export` and
:mod:`~rnnx.cli.info`; what they share (one-line errors, tables, the checks of backends, devices
and output paths) is :mod:`rnnx.cli._common`. This package (with the tests) is where results move
to the host."""

from __future__ import annotations

import click

from .._version import __version__
from . import check, export, info, predict, train
from ._common import OneLineErrors

__all__ = ["main"]


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rnnx")
def main() -> None:
    """rnnx: recurrent networks with hand-derived BPTT on any Array API backend."""


for _command in (check.check, train.train, predict.predict, export.export, info.info):
    main.add_command(_command)
