"""Synthetic B2B worlds with planted, documented churn mechanisms.

:func:`generate_world` writes the contract tables (see :mod:`churnrisk.contract`) of a
company observed over ``months`` months from ``start``. Everything is drawn from seeded
NumPy generators, so the same arguments give byte-identical files on every machine, in
every time zone.

A world has a **shape**: a business with its own churn mechanism, its own export (which
optional tables and columns exist, what event types and priorities are called, how
billing is written) and its own default size. Each shape's module documents what drives
churn, what each table shows of it and what a model can and cannot see:

- ``default`` (:mod:`churnrisk.worlds.saas`): per-seat SaaS, churn at renewal from a
  latent account health that usage, tickets and NPS reflect; its export also holds a
  small CS history (:mod:`churnrisk.worlds.activities`).
- ``short-history`` (:mod:`churnrisk.worlds.support`): 12 months of an IT-operations
  tool; churn follows a bad support experience (missed targets, bounced and abandoned
  tickets), while usage says nothing.
- ``small-book`` (:mod:`churnrisk.worlds.champion`): 300 accounts of a team workspace;
  an account leaves at renewal once the user who championed it has left.
- ``renewal-pricing`` (:mod:`churnrisk.worlds.pricing`): monthly and annual billing;
  churn at renewal from price shocks (a first-term discount expiring, a list price rise)
  weighed against how many of the paid seats are used.
- ``event-mix`` (:mod:`churnrisk.worlds.crm`): a CRM with 25 event types and deal
  amounts; leaving accounts export, remove users and disconnect integrations while their
  event count holds, so counts alone mislead.
- ``cancellation-dated`` (:mod:`churnrisk.worlds.cancel`): a card-billed self-serve tool
  exported as paying spells, ``end_date`` only once cancelled, no ``term_end``; churn on
  any day, from lapsed projects and failed payments.

Shapes share only plumbing (:mod:`churnrisk.worlds.base`, :mod:`churnrisk.worlds.kit`);
each draws from its own random streams, so adding a shape changes no other shape's world.

Every shape obeys the contract's date meanings: a row's ``end_date`` is the day it
stopped paying and is written only when that day is before the end of the export;
``term_end``, where a shape writes it, is known on the day the row starts. Churn is MRR
falling to zero; nothing is observed before an account's creation or after ``end``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from churnrisk.errors import ConfigError
from churnrisk.worlds import cancel, champion, crm, pricing, saas, support
from churnrisk.worlds.activities import draw_activities
from churnrisk.worlds.base import Calendar, Shape, Sink, add_months, draw_accounts

__all__ = ["BATCH_SIZE", "SHAPES", "GenerateSummary", "Shape", "add_months", "generate_world"]

BATCH_SIZE = 500
"""Accounts simulated together; part of the seeding scheme, so changing it changes worlds."""

SHAPES: dict[str, Shape] = {
    s.name: s
    for s in (saas.SHAPE, support.SHAPE, champion.SHAPE, pricing.SHAPE, crm.SHAPE, cancel.SHAPE)
}
"""Every world shape, by name, the default first."""


@dataclass(frozen=True)
class GenerateSummary:
    """What :func:`generate_world` wrote.

    Attributes
    ----------
    out
        The folder holding the tables.
    rows
        Number of rows written per table.
    start
        First day of the observed period.
    end
        Exclusive end of the observed period (``start`` plus ``months`` months).
    files
        The files written, one per table of the shape's export, in contract order.
    shape
        The world's shape.
    """

    out: Path
    rows: dict[str, int]
    start: date
    end: date
    files: list[Path]
    shape: str = "default"


def _whole(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be a whole number >= {low}, got {value!r}")


def _resolve(shape: str, accounts: int | None, months: int | None) -> tuple[Shape, int, int]:
    """Return the shape and the size asked for, its defaults filling what is not given."""
    if shape not in SHAPES:
        raise ConfigError(f"shape must be one of {', '.join(SHAPES)}, got {shape!r}")
    spec = SHAPES[shape]
    accounts = spec.accounts if accounts is None else accounts
    months = spec.months if months is None else months
    _whole("accounts", accounts, 1)
    _whole("months", months, 1)
    return spec, accounts, months


def generate_world(
    out: Path,
    *,
    shape: str = "default",
    accounts: int | None = None,
    months: int | None = None,
    start: date = date(2024, 11, 1),
    seed: int = 0,
    fmt: Literal["csv", "parquet"] = "parquet",
    progress: Callable[[int], None] | None = None,
) -> GenerateSummary:
    """Generate a synthetic B2B world of one shape and write it as contract tables.

    The shapes and their churn mechanisms are described in the module docstring and in
    each shape's module. Accounts are simulated in batches of :data:`BATCH_SIZE`, each
    with its own generator seeded from ``(seed, batch index)`` and the shape's stream;
    tables are written batch by batch, so memory stays bounded whatever the size.

    Parameters
    ----------
    out
        Folder to write ``<table>.csv`` or ``<table>.parquet`` files into (created if
        missing; existing files of the same name are replaced).
    shape
        A name in :data:`SHAPES`.
    accounts
        Number of accounts (>= 1), those existing at ``start`` and those arriving later;
        default: the shape's.
    months
        Length of the observed period in months (>= 1); default: the shape's.
    start
        First day of the observed period.
    seed
        Non-negative seed; the same arguments give byte-identical files.
    fmt
        ``"parquet"`` (zstd, one row group per batch) or ``"csv"`` (ISO-8601 UTC
        timestamps such as ``2025-03-04T10:15:00Z``, dates as ``2025-03-04``).
    progress
        Called with the number of accounts just finished, after each batch.

    Returns
    -------
    GenerateSummary
        Folder, files, row counts per table and the observed period ``[start, end)``.

    Raises
    ------
    ConfigError
        When an argument is not valid.
    """
    spec, accounts, months = _resolve(shape, accounts, months)
    _whole("seed", seed, 0)
    if fmt not in ("csv", "parquet"):
        raise ConfigError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    if isinstance(start, datetime) or not isinstance(start, date):
        raise ConfigError(f"start must be a date (not a datetime), got {start!r}")

    cal = Calendar(start, months)
    draws = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, *spec.stream)))
    company = np.random.SeedSequence(seed, spawn_key=(2, *spec.stream))
    world = draw_accounts(
        accounts, cal, draws, prefix=spec.id_prefix, width=spec.id_width, company=company
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sink = Sink(out, fmt)
    next_ticket = 1
    first: dict[str, pa.Table] = {}
    try:
        for b, lo in enumerate(range(0, accounts, BATCH_SIZE)):
            hi = min(lo + BATCH_SIZE, accounts)
            key = (1, b, *spec.stream)
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))
            tables = spec.simulate(rng, cal, world, lo, hi, next_ticket)
            if "tickets" in tables:
                next_ticket += tables["tickets"].num_rows
            sink.write(tables)
            if b == 0:
                first = tables
            if progress is not None:
                progress(hi - lo)
        if spec.activities:
            history = np.random.default_rng(
                np.random.SeedSequence(seed, spawn_key=(3, *spec.stream))
            )
            sink.write(
                {
                    "activities": draw_activities(
                        history, cal, first["accounts"], first["subscriptions"]
                    )
                }
            )
    finally:
        sink.close()
    return GenerateSummary(
        out=out,
        rows=dict(sink.rows),
        start=start,
        end=cal.end,
        files=list(sink.files),
        shape=spec.name,
    )
