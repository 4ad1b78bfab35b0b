"""What a long step tells the user while it runs, on stderr so stdout stays the command's
result: one progress bar for every step (fitting, mapping, writing, restoring), rich's bar with
its time left, and warnings, said as soon as they are known."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: ``tell(done, total)``: how a long step reports where it is.
Tell = Callable[[int, int], None]


def say_warning(text: str) -> None:
    """One warning line, as every command prints them."""
    from rich.console import Console

    Console(stderr=True).print(f"[bold yellow]warning:[/] {text}", highlight=False, soft_wrap=True)


@contextmanager
def progress_bar(what: str, shown: bool = True) -> Iterator[Tell]:
    """A transient bar labelled ``what``, told ``(done, total)``; ``shown=False`` (a library
    call, a helper process) draws nothing."""
    if not shown:
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
