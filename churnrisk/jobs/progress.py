"""How a workflow reports as it goes: the :class:`Progress` protocol and :data:`QUIET`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    pass


Count = Callable[[int], None]
"""Called with how many more items of a counted step are done."""


class Progress(Protocol):
    """How a workflow says what it is doing; the CLI shows it on standard error."""

    def step(self, message: str) -> None:
        """One of several steps starts (the :data:`churnrisk.pipeline.Step` callback)."""

    def working(self, message: str) -> AbstractContextManager[object]:
        """Return a context that lasts while one long step runs."""

    def counting(self, message: str, total: int | None) -> AbstractContextManager[Count]:
        """Return a context that lasts while ``total`` items are done, counted as they go."""

    def loaded(self, report: Any, quarantine: Path | None, source: Path | None) -> None:
        """Report what a check of a data source set aside (``report``), once it is known.

        ``source`` is the path ``churnrisk validate`` can check again (``None`` for a
        Spark source).
        """


def _ignore(_: int) -> None:
    """Ignore a count."""


class Quiet:
    """Progress that shows nothing: the default of every workflow."""

    def step(self, message: str) -> None:
        """Ignore a step."""

    @contextmanager
    def working(self, message: str) -> Iterator[object]:
        """Run the step unseen."""
        yield None

    @contextmanager
    def counting(self, message: str, total: int | None) -> Iterator[Count]:
        """Count nothing."""
        yield _ignore

    def loaded(self, report: Any, quarantine: Path | None, source: Path | None) -> None:
        """Ignore the report."""


QUIET = Quiet()
