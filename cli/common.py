"""What every command shares: the console, who the command line acts as, errors as
messages with exit status 2, progress bars, and the settings read once for the command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from geo import settings
from geo.errors import GridmapError
from geo.security.identity import Identity, cli_identity
from geo.units.model import Progress as ProgressCallback

console = Console(stderr=True)


def me() -> Identity:
    """Who the command line acts as in change sets, plans and the audit log: cli:<os user>."""
    return cli_identity()


def config() -> settings.Settings:
    """The settings, read once for the command (a bad value is an error like any other)."""
    with errors():
        return settings.get()


@contextmanager
def errors() -> Iterator[None]:
    """A gridmap error ends the command with its message and exit status 2."""
    try:
        yield
    except GridmapError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None


@contextmanager
def progress() -> Iterator[ProgressCallback]:
    """A progress bar; yields a callback (stage, done, total)."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=max(total, 1))
            bar.update(tasks[stage], completed=done, total=max(total, 1))

        yield update
