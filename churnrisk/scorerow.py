"""The score row, declared once: every field of an account's score in a scoring run.

:data:`SCORE_FIELDS` is the one declaration the surfaces of a score are built from:

- the score store's ``scores`` table (:mod:`churnrisk.store.schema` makes its columns,
  :data:`churnrisk.store.SCORE_COLUMNS` their names),
- the scoring job's rows (:func:`churnrisk.scoring.score_panel` takes each field from
  where its ``source`` says),
- the Spark job's output schema (:mod:`churnrisk.scoring_spark`),
- the API's at-risk list and account detail models and their answers
  (:mod:`churnrisk.api.schemas`, :mod:`churnrisk.api.routes.shapes`), hence the OpenAPI
  document,
- the CRM export's columns and values (:mod:`churnrisk.api.routes.export`).

Adding a field
--------------
1. Declare it in :data:`SCORE_FIELDS` (its place there is its place in the export and the
   API documents). A field taken from a registered feature (``source="feature"``), a
   model prediction or an account attribute needs no code anywhere else; a
   ``"computed"`` field needs its computation in :func:`churnrisk.scoring.score_panel`.
2. Give the store its column: a new migration under
   ``churnrisk/store/migrations/versions`` whose ``upgrade`` is
   ``add_score_columns("the_field")`` and ``downgrade`` ``drop_score_columns("the_field")``
   (:mod:`churnrisk.store.schema`): the helper reads the column's type and nullability
   from this declaration. Rows of earlier runs get NULL, so a new field is nullable (a
   ``drivers`` field gets an empty list instead). ``HEAD_REVISION`` in that module names
   the newest revision for the tests; the store itself reads the head from the
   migrations.
3. Show it in the dashboard (``churnrisk/api/static/app.js``), if people should see it.

Nothing here imports the API, the store or pandas: this module is the bottom of the
score's layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

Kind = Literal["text", "number", "whole", "date", "drivers", "change_drivers"]
"""A field's logical type.

``text``
    A string. Store: ``VARCHAR``; Spark: string; API: string.
``number``
    A finite float. Store: ``FLOAT`` (NaN stored as NULL); Spark: double; API: number.
``whole``
    A count of days or items, held as float64 in frames (so that missing is NaN) and
    stored as ``FLOAT``; the API and the export give it as a rounded integer.
``date``
    A calendar day. Store: ``DATE``; Spark: date; API: ``date``; export: ISO text.
``drivers``
    A list of driver items (:func:`churnrisk.scoring.driver_items`). Store: ``JSON``;
    Spark: JSON text; API: a list of ``DriverPublic``.
``change_drivers``
    A list of change-driver items (:func:`churnrisk.scoring.change_driver_items`), as
    ``drivers`` with ``ChangeDriverPublic`` items.
"""

Source = Literal["key", "attribute", "feature", "prediction", "computed"]
"""Where the scoring job takes a field's value from.

``key``
    The account id.
``attribute``
    The accounts table's column of that name (an optional contract column: NULL where
    the source lacks it).
``feature``
    The feature panel's column :attr:`ScoreField.feature` (NULL where the panel lacks
    it, as a feature of an absent optional table is).
``prediction``
    The bundle's prediction of that name (:meth:`ChurnRiskModels.predict
    <churnrisk.models.bundle.ChurnRiskModels.predict>`).
``computed``
    Computed by :func:`churnrisk.scoring.score_panel` itself (tiers, MRR at risk,
    drivers, changes, renewal date, MRR up for renewal).
"""

Api = Literal["list", "detail"]
"""Which API answers carry a field: ``list`` the at-risk list and the account detail,
``detail`` the account detail only."""

JsonValue = str | int | float | date | list[Any] | None


@dataclass(frozen=True)
class ScoreField:
    """One field of a score row.

    Attributes
    ----------
    name
        Its name in the store, the frames, the Spark rows and the API.
    kind
        Its logical type (:data:`Kind`).
    nullable
        Whether it may be missing (NULL in the store, ``null`` in the API).
    description
        One line saying what it is; the OpenAPI description unless ``documented`` is off.
    source
        Where the scoring job takes it from (:data:`Source`).
    api
        Which API answers carry it (:data:`Api`), or ``None`` for none.
    export
        Its column name in the CRM export (CSV and JSON), or ``None`` when not exported.
    feature
        For ``source="feature"``: the feature's column (default: ``name``).
    length
        The store's ``VARCHAR`` length of a text field (``None``: unbounded).
    risers_only
        For a ``drivers`` field: the at-risk list and the export keep only the items that
        raise risk (the detail has every item); the export gives their texts.
    detail_description
        The OpenAPI description in the account detail, when it says more than the list's.
    documented
        Whether the OpenAPI document shows ``description`` (off for the fields it has
        always left undescribed: their names say it).
    """

    name: str
    kind: Kind
    nullable: bool
    description: str
    source: Source
    api: Api | None = "list"
    export: str | None = None
    feature: str | None = None
    length: int | None = None
    risers_only: bool = False
    detail_description: str | None = None
    documented: bool = True

    @property
    def feature_column(self) -> str:
        """Return the feature panel's column a ``feature`` field is read from."""
        return self.feature or self.name

    def in_api(self, answer: Api) -> bool:
        """Whether the API answer ``answer`` (``list`` or ``detail``) carries the field."""
        return self.api == "list" or (self.api == "detail" and answer == "detail")

    def api_description(self, answer: Api) -> str | None:
        """Return the OpenAPI description of the field in ``answer`` (``None``: none)."""
        if answer == "detail" and self.detail_description is not None:
            return self.detail_description
        return self.description if self.documented else None


def _f(name: str, kind: Kind, nullable: bool, description: str, **rest: Any) -> ScoreField:
    return ScoreField(name, kind, nullable, description, **rest)


# fmt: off
SCORE_FIELDS: tuple[ScoreField, ...] = (
    _f("account_id", "text", False, "The account.", source="key", export="account_id",
       documented=False),
    _f("name", "text", True, "The account's name, if known.", source="attribute",
       export="name", documented=False),
    _f("segment", "text", True, "The account's segment as of the date.", source="feature",
       export="segment", documented=False),
    _f("plan", "text", True, "The plan of its current subscription as of the date.",
       source="feature", export="plan", documented=False),
    _f("owner", "text", True, "The account's owner (CS manager), if known.",
       source="attribute", export="owner"),
    _f("risk_tier", "text", False, "The tier of the churn probability.", source="computed",
       export="risk_tier", length=32, documented=False),
    _f("churn_probability", "number", False, "Calibrated churn probability, 0-1.",
       source="prediction", export="churn_probability"),
    _f("previous_probability", "number", True,
       "The churn probability of the previous run (null: not scored then).",
       source="computed", api="detail", documented=False),
    _f("probability_change", "number", True,
       "Change of the probability since the previous run (null: not scored then).",
       source="computed", export="probability_change"),
    _f("mrr", "number", False, "Monthly recurring revenue on the as-of date.",
       source="prediction", export="mrr"),
    _f("mrr_at_risk", "number", False, "MRR x churn probability.", source="computed",
       export="mrr_at_risk"),
    _f("revenue_12m", "number", False, "Projected revenue of the next 12 months.",
       source="prediction", export="revenue_12m"),
    _f("lifetime_clv", "number", False, "Projected lifetime customer value.",
       source="prediction", export="lifetime_clv"),
    _f("renewal_date", "date", True,
       "Context, not a driver: the nearest end of a subscription term known on the as-of"
       " date (as-of date + `days_to_renewal`); null: no known term end.",
       source="computed", export="renewal_date"),
    _f("days_to_renewal", "whole", True,
       "Days from the as-of date to `renewal_date` (null: no known term end).",
       source="feature", export="days_to_renewal"),
    _f("renewal_mrr", "number", True,
       "MRR up for renewal: the MRR of the subscription rows known on the as-of date whose"
       " term ends on `renewal_date` (ARR = 12 x it); null: no known term end.",
       source="computed", export="renewal_mrr"),
    _f("drivers", "drivers", False,
       "The top drivers raising risk, among the features customer success can act on"
       " (usage, engagement, tickets, NPS, billing changes).",
       source="computed", export="top_drivers", risers_only=True,
       detail_description="Top drivers in both directions, risers first, among the"
       " features customer success can act on."),
    _f("change_drivers", "change_drivers", False,
       "Why the score changed since the previous run (empty: no previous run).",
       source="computed", api="detail"),
    _f("context", "drivers", False,
       "Context, apart from the drivers: who the account is and where it stands in its"
       " contract (size, plan, tenure, segment, renewal timing), largest push first (empty"
       " for scores written before the store kept it).",
       source="computed", api="detail"),
)
# fmt: on
"""Every field of a score row, in order: the order of the export's columns."""

FIELDS_BY_NAME: dict[str, ScoreField] = {f.name: f for f in SCORE_FIELDS}

SCORE_COLUMNS: list[str] = [f.name for f in SCORE_FIELDS]
"""The names of the score row's fields, in declaration order."""

EXPORT_FIELDS: tuple[ScoreField, ...] = tuple(f for f in SCORE_FIELDS if f.export is not None)
"""The fields the CRM export carries, in its column order."""


def api_fields(answer: Api) -> tuple[ScoreField, ...]:
    """Return the fields the API answer ``answer`` (``list`` or ``detail``) carries."""
    return tuple(f for f in SCORE_FIELDS if f.in_api(answer))


def fields_of(*, kind: Kind | None = None, source: Source | None = None) -> tuple[str, ...]:
    """Return the names of the fields of a kind and/or a source, in declaration order."""
    return tuple(
        f.name
        for f in SCORE_FIELDS
        if (kind is None or f.kind == kind) and (source is None or f.source == source)
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def json_value(field: ScoreField, value: Any, *, answer: Api | Literal["export"]) -> JsonValue:
    """Return a stored value of ``field`` as an API answer or the export gives it.

    Texts and numbers are given as stored (NaN as ``None``); ``whole`` numbers rounded to
    an ``int``; dates as :class:`datetime.date` in the API (serialised as ISO text) and
    as ISO text in the export; driver lists as lists of items, the items that raise risk
    only where ``risers_only`` says so (the at-risk list), and in the export as the texts
    of those items.

    Parameters
    ----------
    field
        The field.
    value
        Its value in a stored row (``None`` when the row lacks it).
    answer
        ``"list"``, ``"detail"`` or ``"export"``.
    """
    if field.kind in ("drivers", "change_drivers"):
        items = [] if _missing(value) else list(value)
        if field.risers_only and answer != "detail":
            items = [d for d in items if d.get("direction") == "raises"]
        return [d.get("text") for d in items] if answer == "export" else items
    if _missing(value):
        return None
    if field.kind == "whole":
        return round(value)
    if field.kind == "date" and answer == "export":
        return value.isoformat()
    return value


__all__ = [
    "EXPORT_FIELDS",
    "FIELDS_BY_NAME",
    "SCORE_COLUMNS",
    "SCORE_FIELDS",
    "Api",
    "Kind",
    "ScoreField",
    "Source",
    "api_fields",
    "fields_of",
    "json_value",
]
