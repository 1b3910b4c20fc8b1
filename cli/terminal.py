"""What the CLI prints: tables, progress bars, and a failure as one line.

Nothing printed is read as Rich markup (the consoles have it off), and text from the data
(ids, event types, reasons) has its control characters written out (`say`, `show_table`):
an id such as `[/oops]` or one holding ESC is shown, never obeyed."""

import functools
from collections.abc import Callable
from typing import TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from db.errors import DataLayerError, error_line, error_message
from service.rendering import TextTable, printable

console = Console(markup=False)
errors = Console(stderr=True, markup=False)
UNBOUNDED_WIDTH = 10_000
F = TypeVar("F", bound=Callable)


def one_line_errors(debug: Callable[[], bool]) -> Callable[[F], F]:
    """Show a command's failure as one line on stderr with a non-zero exit; its traceback
    only when `debug()` says so."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            try:
                return command(*args, **kwargs)
            except (typer.Exit, typer.Abort):
                raise
            except Exception as error:
                if debug():
                    errors.print_exception()
                line = Text.assemble(("error:", "bold red"), " ", printable(one_line(error)))
                errors.print(line, highlight=False, soft_wrap=True)
                raise typer.Exit(code=1) from None

        return wrapper

    return decorate


def one_line(error: Exception) -> str:
    """The message of an expected failure (bad input or settings, the database); any other
    failure's type and message, and where its traceback is. Passwords masked."""
    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in error.errors()
        )
        # A run's request (its options) or the settings (environment, .env).
        what = "settings" if error.title == "Settings" else "options"
        return f"invalid {what}: {problems}"
    if isinstance(error, DataLayerError | ValueError):
        return error_message(error)
    if isinstance(error, SQLAlchemyError):
        return f"database error: {error_message(error)}"
    return f"{error_line(error)} (run `propensity --debug ...` for the traceback)"


def rows_progress(description: str) -> Progress:
    return Progress(
        TextColumn(description),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def say(text: str, **options) -> None:
    """Print a line that may hold text from the data."""
    console.print(printable(text), highlight=False, **options)


def show_table(table: TextTable) -> None:
    view = Table(title=printable(table.title))
    for column in table.header:
        view.add_column(printable(column))
    for row in table.rows:
        view.add_row(*(Text(printable(cell)) for cell in row))
    # Off a terminal (a log file, a pipe) Rich would fit the table into 80 columns and cut
    # its cells; there the table takes the width it needs.
    if not console.is_terminal:
        unbounded = console.options.update_width(UNBOUNDED_WIDTH)
        needed = console.measure(view, options=unbounded).maximum
        view.width = needed if needed > console.width else None
    console.print(view, crop=console.is_terminal)


def show_counts(title: str, counts: dict[str, int]) -> None:
    show_table(
        TextTable(
            title,
            ("event_type", "events"),
            [[name, f"{n:,}"] for name, n in sorted(counts.items(), key=lambda item: -item[1])],
        )
    )
