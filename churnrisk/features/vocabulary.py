"""Features from the data's own vocabulary: its event types and its ticket priorities.

The registry declares the features every data set has. A company's event types
(``add_contact``, ``win_deal``...) and ticket priorities are its own, so their features
are declared from the data: a :class:`Vocabulary` holds the values to count, learned by
:func:`learn_vocabulary`, and :func:`vocabulary_features` turns it into declarations the
engine computes like any registered feature:

* per event type: ``<type> events, last 30 days`` and their trend (last 30 days against
  the 30 before);
* per ticket priority: ``<priority>-priority tickets opened, last 90 days``.

When the vocabulary is learned
    Choosing which values to count is part of fitting: a vocabulary learned from data on
    or after a date the model is tested or scored on would let that period choose the
    features. So a vocabulary is learned from rows strictly before one date, and the
    training panel (:func:`churnrisk.pipeline.training_panel`) uses the panel's first
    as-of date: no row of the panel, hence no backtest fold and no test date, comes
    before it. The model keeps its vocabulary (``bundle.json``); scoring and
    explanations build their features with that stored vocabulary, never a new one.

What is kept
    The :data:`MAX_TERMS` most frequent values with at least :data:`MIN_ROWS` rows
    before the date (ties by value), compared as stored for event types and
    lower-cased for priorities. Names are ``type_<slug>_30d``, ``type_<slug>_trend_30d``
    and ``tickets_priority_<slug>_90d``, where the slug is the value lower-cased with runs
    of other characters than ``a-z0-9`` as ``_`` (at most 40 characters), suffixed with a
    short hash of the value when it is not the value itself, so that two values never
    share a name; the prefixes are not those of any registered feature.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

import ibis

from churnrisk.dataset import TableSet
from churnrisk.features.registry import FEATURES, Aggregation, Feature, declare

MAX_TERMS = 20
"""At most this many event types, and this many priorities."""

MIN_ROWS = 20
"""A value is kept only with at least this many rows before the learning date."""


@dataclass(frozen=True)
class Vocabulary:
    """The values a model's vocabulary features count.

    Attributes
    ----------
    event_types
        Event types, most frequent first.
    priorities
        Ticket priorities (lower-cased), most frequent first.
    learned_before
        The date the vocabulary was learned before (rows strictly earlier only).
    """

    event_types: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    learned_before: date | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the vocabulary as JSON-ready data."""
        return {
            "event_types": list(self.event_types),
            "priorities": list(self.priorities),
            "learned_before": None if self.learned_before is None else str(self.learned_before),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocabulary:
        """Rebuild a vocabulary from :meth:`to_dict` output."""
        before = data.get("learned_before")
        return cls(
            event_types=tuple(data.get("event_types", ())),
            priorities=tuple(data.get("priorities", ())),
            learned_before=None if before is None else date.fromisoformat(before),
        )


def _top(table: Any, column: Any, max_terms: int, min_rows: int) -> tuple[str, ...]:
    counted = (
        table.filter(column.notnull())
        .group_by(value=column)
        .aggregate(n=ibis._.count())
        .filter(ibis._.n >= min_rows)
        .order_by([ibis.desc("n"), "value"])
        .limit(max_terms)
    )
    return tuple(str(v) for v in counted.execute()["value"])


def learn_vocabulary(
    ds: TableSet,
    *,
    before: date,
    max_terms: int = MAX_TERMS,
    min_rows: int = MIN_ROWS,
) -> Vocabulary:
    """Learn the event types and ticket priorities of ``ds`` from rows before ``before``.

    Parameters
    ----------
    ds
        The data set.
    before
        Only events with ``timestamp`` and tickets with ``created_at`` strictly before
        midnight UTC of this date are read.
    max_terms, min_rows
        Keep at most ``max_terms`` values of each, each with at least ``min_rows`` rows.

    Returns
    -------
    Vocabulary
        Empty parts for absent tables or columns without values.
    """
    cutoff = ibis.literal(before).cast("timestamp")
    types: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    if ds.has("events"):
        ev = ds.table("events")
        ev = ev.filter(ev.timestamp < cutoff)
        types = _top(ev, ev.event_type, max_terms, min_rows)
    if ds.has("tickets"):
        tk = ds.table("tickets")
        tk = tk.filter(tk.created_at < cutoff)
        priorities = _top(tk, tk.priority.lower(), max_terms, min_rows)
    return Vocabulary(types, priorities, before)


def _slug(value: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")[:40]
    if slug != value:
        slug = f"{slug}_{hashlib.sha1(value.encode()).hexdigest()[:6]}".lstrip("_")
    return slug


def vocabulary_features(vocabulary: Vocabulary | None) -> tuple[Feature, ...]:
    """Return the declarations of a vocabulary's features (and declare them).

    Declared with :func:`churnrisk.features.registry.declare`, so that
    :func:`~churnrisk.features.registry.get_feature` and the explanations know them.
    """
    if vocabulary is None:
        return ()
    out: list[Feature] = []
    for value in vocabulary.event_types:
        slug, match = _slug(value), ("event_type", value)
        out.append(
            Feature(
                f"type_{slug}_30d",
                "usage",
                30,
                f"{value} events, last 30 days",
                "int",
                "events",
                agg=Aggregation("event_types", "sum", "n", match=match),
            )
        )
        out.append(
            Feature(
                f"type_{slug}_trend_30d",
                "usage",
                60,
                f"Relative change in {value} events, last 30 days vs the 30 days before",
                "float",
                "events",
                agg=Aggregation("event_types", "trend", "n", match=match),
            )
        )
    for value in vocabulary.priorities:
        out.append(
            Feature(
                f"tickets_priority_{_slug(value)}_90d",
                "tickets",
                90,
                f"{value}-priority tickets opened, last 90 days",
                "int",
                "tickets",
                agg=Aggregation("tickets", "count", match=("priority", value)),
            )
        )
    declare(out)
    return tuple(out)


def panel_features(vocabulary: Vocabulary | None) -> tuple[Feature, ...]:
    """Return the registered features followed by those of ``vocabulary``."""
    return FEATURES + vocabulary_features(vocabulary)


__all__ = [
    "MAX_TERMS",
    "MIN_ROWS",
    "Vocabulary",
    "learn_vocabulary",
    "panel_features",
    "vocabulary_features",
]
