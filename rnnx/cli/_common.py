"""What every ``rnnx`` command shares: expected errors as one line on stderr (never a
traceback), tables on stdout, and the checks of ``--backend``, ``--device`` and output paths
made before any work."""

from __future__ import annotations

import math
import os
import sys
from typing import Any

import click

from .._backend import check_writable, device_label, devices, get_namespace
from ..models._constraints import PARAMETER_CONSTRAINTS, StrOptions, accepts, expected, value_type

__all__ = ["Float", "Hyper", "Int", "OneLineErrors", "check_backend", "check_output", "finite",
           "print_table", "resolve_device"]


class OneLineErrors(click.Group):
    """Turn expected user errors into one line on stderr and exit status 2, never a traceback:
    bad arguments (click's usage errors, shown in one line with a pointer to --help), bad
    values and unreadable files. Ctrl-C prints one line and exits 130 (128 + SIGINT)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort):
            raise  # click's own exits (--help is Exit(0), a RuntimeError)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "rnnx"
            msg = " ".join(exc.format_message().split())
            click.echo(f"rnnx: error: {msg} (see '{where} --help')", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"rnnx: error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except BrokenPipeError:
            _quiet_closed_pipe()
        except (ValueError, TypeError, OSError, RuntimeError, FloatingPointError, EOFError) as exc:
            click.echo(f"rnnx: error: {' '.join(str(exc).split())}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("rnnx: interrupted", err=True)
            sys.exit(130)


def _quiet_closed_pipe() -> None:
    """The reader of stdout went away (``rnnx check | head -3``): end quietly with the status
    of a process killed by SIGPIPE (141 = 128 + 13), as ``cat`` and ``grep`` do. stdout is
    pointed at /dev/null first, so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (click's runner)
        pass
    sys.exit(141)


class Int(click.IntRange):
    """click's IntRange, whose conversion error says "'ten' is not a valid integer", not
    "... a valid integer range"."""

    name = "integer"


class Float(click.FloatRange):
    name = "float"


class Hyper(click.ParamType):
    """The command-line value of the estimators' hyper-parameter ``param``: parsed into the
    table's value type and checked by the estimators' own rule
    (:data:`rnnx.models._constraints.PARAMETER_CONSTRAINTS`), so the rule is written once, there
    (``--clip 0`` is ``clip_norm=0``: off in both)."""

    def __init__(self, param: str) -> None:
        self.param = param
        self.kind = value_type(param)
        self.name = {int: "integer", float: "float"}.get(self.kind, "text")

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str | None:
        for c in PARAMETER_CONSTRAINTS[self.param]:
            if isinstance(c, StrOptions):
                return f"[{'|'.join(sorted(c.options))}]"
        return None

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        if isinstance(value, str) and self.kind is not str:
            try:
                value = self.kind(value)
            except ValueError:
                self.fail(f"{value!r} is not a valid {self.name}.", param, ctx)
        if not accepts(self.param, value):
            self.fail(f"must be {expected(self.param, none=None)}; got {value!r}", param, ctx)
        return value


def finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A click callback: click's FloatRange lets nan through (every comparison with nan is
    False) and allows inf."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number; got {value}")
    return value


def _fmt_row(cols: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    click.echo(_fmt_row(header, widths))
    click.echo(_fmt_row(["-" * w for w in widths], widths))
    for r in rows:
        click.echo(_fmt_row(r, widths))


def resolve_device(backend: str, label: str | None) -> Any:
    """A device of ``backend`` named by ``label`` (``"cpu"``, ``"cuda"``, ``"cuda:0"``,
    ``"device1"``...): its :func:`~rnnx._backend.device_label` (the same ``cuda:N`` on CuPy,
    torch and JAX), the library's own string, or the kind alone (``"cuda"``: the first GPU);
    ``None`` means the backend's default device."""
    if label is None:
        return None
    found = devices(backend)
    for d in found:
        short = device_label(d)
        if label in {str(d), short, short.partition(":")[0]}:
            return d
    known = ", ".join(sorted({device_label(d) for d in found}))
    raise click.BadParameter(f"{label!r} is not a device of {backend} here; devices: {known}",
                             param_hint="--device")


def check_backend(backend: str) -> None:
    # Only the requested backend is probed: importing every backend (torch, cupy) to list them
    # costs seconds.
    try:
        get_namespace(backend)
    except (ValueError, RuntimeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--backend") from None


def check_output(path: str, option: str) -> None:
    """The folder of ``path`` exists and is writable (checked before any work)."""
    try:
        check_writable(path)
    except OSError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None
