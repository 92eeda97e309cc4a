"""The score row's one declaration feeds every surface: store, scoring, Spark, API, export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from store_fixtures import (
    create_pg_schema,
    drop_pg_schema,
    sample_run,
    schema_url,
    score_row,
    sqlite_url,
    store_urls,
)

from churnrisk.api.app import create_app
from churnrisk.api.routes import shapes
from churnrisk.api.routes.export import CSV_COLUMNS, RUN_COLUMNS, _csv, export_row
from churnrisk.errors import ConfigError
from churnrisk.scorerow import (
    EXPORT_FIELDS,
    FIELDS_BY_NAME,
    SCORE_COLUMNS,
    SCORE_FIELDS,
    ScoreField,
    api_fields,
    json_value,
)
from churnrisk.scoring import _field_values
from churnrisk.store import ScoreStore
from churnrisk.store import schema as store_schema
from churnrisk.store.schema import add_score_columns, drop_score_columns, scores

RUN_FIELDS_OF_DETAIL = {
    "previous_as_of",
    "as_of",
    "scored_at",
    "run_id",
    "churn_version",
    "clv_version",
    "current",
    "history",
}

# ----------------------------------------------------------------------------- store


def test_store_columns_are_the_declared_fields() -> None:
    assert [c.name for c in scores.columns] == ["run_id", *SCORE_COLUMNS]
    assert store_schema.SCORE_COLUMNS == SCORE_COLUMNS
    types = {
        "text": sa.String,
        "number": sa.Float,
        "whole": sa.Float,
        "date": sa.Date,
        "drivers": sa.JSON,
        "change_drivers": sa.JSON,
    }
    for f in SCORE_FIELDS:
        column = scores.c[f.name]
        assert isinstance(column.type, types[f.kind]), f.name
        assert column.nullable == f.nullable, f.name
    assert [c.name for c in scores.primary_key] == ["run_id", "account_id"]
    assert scores.c.risk_tier.type.length == 32
    assert store_schema.NULLABLE_FLOATS == (
        "previous_probability",
        "probability_change",
        "days_to_renewal",
        "renewal_mrr",
    )
    assert store_schema.NULLABLE_TEXTS == ("name", "segment", "plan", "owner")
    assert store_schema.JSON_COLUMNS == ("drivers", "context", "change_drivers")
    assert store_schema.NULLABLE_DATES == ("renewal_date",)


@pytest.fixture(name="migrated", params=store_urls())
def migrated_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScoreStore]:
    """A store of its own at head (a fresh PostgreSQL schema: the tests alter its tables)."""
    if request.param == "sqlite":
        store = ScoreStore(sqlite_url(tmp_path))
        store.upgrade()
        yield store
        store.close()
        return
    name = create_pg_schema()
    store = ScoreStore(schema_url(name))
    try:
        store.upgrade()
        yield store
    finally:
        store.close()
        drop_pg_schema(name)


def _columns(store: ScoreStore) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in sa.inspect(store.engine).get_columns("scores")}


def test_migrations_create_the_declared_columns(migrated: ScoreStore) -> None:
    found = _columns(migrated)
    assert set(found) == {"run_id", *SCORE_COLUMNS}
    for f in SCORE_FIELDS:
        assert found[f.name]["nullable"] == (f.nullable and f.source != "key"), f.name


def _migrate(store: ScoreStore, step: Any) -> None:
    """Run ``step`` as a migration's body does (``alembic.op`` bound to a connection)."""
    with store.engine.begin() as conn, Operations.context(MigrationContext.configure(conn)):
        step()


def test_a_new_declared_field_gets_its_column_from_the_helper(
    migrated: ScoreStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, frame = sample_run("2026-10-01", "2026-10-02T06:00", [score_row("a1", 0.3)])
    migrated.write_run(run, frame)
    seats = ScoreField("seats", "whole", True, "Paid seats.", source="feature")
    monkeypatch.setitem(store_schema.FIELDS_BY_NAME, "seats", seats)

    _migrate(migrated, lambda: add_score_columns("seats"))
    column = _columns(migrated)["seats"]
    assert (isinstance(column["type"], sa.Float), column["nullable"]) == (True, True)
    with migrated.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT seats FROM scores").all() == [(None,)]

    _migrate(migrated, lambda: add_score_columns("seats"))  # present already: no-op
    _migrate(migrated, lambda: drop_score_columns("seats"))
    assert "seats" not in _columns(migrated)


def test_a_driver_list_added_later_is_empty_on_stored_rows(migrated: ScoreStore) -> None:
    run, frame = sample_run("2026-10-01", "2026-10-02T06:00", [score_row("a1", 0.3)])
    migrated.write_run(run, frame)
    _migrate(migrated, lambda: drop_score_columns("context"))
    assert "context" not in _columns(migrated)
    _migrate(migrated, lambda: add_score_columns("context"))
    assert migrated.run_scores(run.run_id, columns=["context"])["context"].tolist() == [[]]


def test_the_helper_refuses_what_stored_rows_cannot_have(migrated: ScoreStore) -> None:
    with pytest.raises(ConfigError, match="'tenure_weeks' is not a declared score field"):
        _migrate(migrated, lambda: add_score_columns("tenure_weeks"))
    with pytest.raises(ConfigError, match="'mrr' is not nullable"):
        _migrate(migrated, lambda: add_score_columns("mrr"))


# ----------------------------------------------------------------------------- scoring


def test_field_values_come_from_the_declared_source() -> None:
    panel = pd.DataFrame(
        {
            "account_id": ["a", "b"],
            "seats": [3.0, np.nan],
            "segment": pd.Categorical(["smb", None]),
        }
    )
    ids = pd.Series(["a", "b"], dtype="string")
    predictions = pd.DataFrame({"mrr": [10.0, 20.0]})
    attributes = pd.DataFrame({"owner": ["ana"]}, index=pd.Index(["b"], name="account_id"))

    def values(field: ScoreField, computed: dict[str, Any] | None = None) -> list[Any]:
        out = _field_values(field, panel, ids, predictions, attributes, computed or {})
        return list(out)

    seats = ScoreField("seats", "whole", True, "Paid seats.", source="feature")
    assert values(seats)[0] == 3.0
    assert np.isnan(values(seats)[1])
    absent = ScoreField("nps", "number", True, "NPS.", source="feature", feature="nps_last")
    assert all(np.isnan(v) for v in values(absent))
    assert values(FIELDS_BY_NAME["segment"]) == ["smb", None]
    assert values(FIELDS_BY_NAME["owner"]) == [None, "ana"]
    assert values(FIELDS_BY_NAME["mrr"]) == [10.0, 20.0]
    assert values(FIELDS_BY_NAME["account_id"]) == ["a", "b"]
    assert values(FIELDS_BY_NAME["risk_tier"], {"risk_tier": ["x", "y"]}) == ["x", "y"]
    with pytest.raises(ConfigError, match="computes no such value"):
        values(ScoreField("risk_rank", "number", True, "Rank.", source="computed"))
    with pytest.raises(ConfigError, match="cannot come from a feature"):
        values(ScoreField("renewal", "date", True, "Renewal.", source="feature"))


def test_spark_output_schema_is_the_declared_row() -> None:
    pytest.importorskip("pyspark")
    from pyspark.sql.types import DateType, DoubleType, StringType

    from churnrisk.scoring_spark import _output_schema

    schema = _output_schema()
    assert schema.fieldNames() == SCORE_COLUMNS
    kinds = {
        "text": StringType(),
        "number": DoubleType(),
        "whole": DoubleType(),
        "date": DateType(),
        "drivers": StringType(),
        "change_drivers": StringType(),
    }
    assert [f.dataType for f in schema.fields] == [kinds[f.kind] for f in SCORE_FIELDS]


# ----------------------------------------------------------------------------- API


@pytest.fixture(name="components", scope="module")
def components_fixture() -> dict[str, Any]:
    return create_app().openapi()["components"]["schemas"]


def test_openapi_list_item_is_the_declared_list_fields(components: dict[str, Any]) -> None:
    item = components["AtRiskRowPublic"]
    declared = api_fields("list")
    contact = {"last_contact", "snoozed_until", "needs_contact"}
    assert set(item["properties"]) == {f.name for f in declared} | contact
    assert set(item["required"]) == {f.name for f in declared} | contact
    assert item["description"] == (
        "An account in the at-risk list: its score in the current run and its CS contact."
    )
    for f in declared:
        prop = item["properties"][f.name]
        assert prop.get("description") == f.api_description("list"), f.name
        allows_null = {"type": "null"} in prop.get("anyOf", [])
        assert allows_null == f.nullable, f.name
    assert item["properties"]["days_to_renewal"]["anyOf"] == [
        {"type": "integer"},
        {"type": "null"},
    ]
    assert item["properties"]["drivers"]["items"] == {"$ref": "#/components/schemas/DriverPublic"}


def test_openapi_detail_is_the_declared_detail_fields_and_the_run(
    components: dict[str, Any],
) -> None:
    detail = components["AccountDetailPublic"]
    declared = {f.name for f in api_fields("detail")}
    assert declared == {f.name for f in api_fields("list")} | {
        "previous_probability",
        "change_drivers",
        "context",
    }
    assert set(detail["properties"]) == declared | RUN_FIELDS_OF_DETAIL
    assert set(detail["required"]) == declared | RUN_FIELDS_OF_DETAIL
    assert detail["properties"]["drivers"]["description"] == (
        "Top drivers in both directions, risers first, among the features customer"
        " success can act on."
    )
    assert detail["properties"]["change_drivers"]["items"] == {
        "$ref": "#/components/schemas/ChangeDriverPublic"
    }


STORED = {
    **score_row(
        "a1",
        0.3,
        renewal_date=date(2026, 11, 30),
        days_to_renewal=12.6,
        renewal_mrr=250.0,
        probability_change=0.05,
        previous_probability=0.25,
        change_drivers=[
            {
                "feature": "dau_mau_30d",
                "meaning": "m",
                "before": 0.3,
                "after": 0.1,
                "before_display": "0.3",
                "after_display": "0.1",
                "contribution_change": 0.2,
                "direction": "raised",
                "text": "m: 0.3 → 0.1, raised risk",
                "extra": "not in the API",
            }
        ],
    ),
    "as_of": date(2026, 10, 1),
    "scored_at": datetime(2026, 10, 2, 6, tzinfo=UTC),
    "run_id": "r1",
    "churn_version": "3",
    "clv_version": "2",
    "previous_as_of": None,
    "current": True,
}


def test_list_and_detail_answers_carry_the_declared_fields() -> None:
    row = shapes.risk_row(STORED)
    assert list(row) == [f.name for f in api_fields("list")]
    assert row["days_to_renewal"] == 13
    assert row["renewal_date"] == date(2026, 11, 30)
    assert row["renewal_mrr"] == 250.0
    assert [d["feature"] for d in row["drivers"]] == ["dau_mau_30d"]  # risers only
    detail = shapes.detail(STORED, [])
    assert set(detail) == {f.name for f in api_fields("detail")} | RUN_FIELDS_OF_DETAIL
    assert [d["feature"] for d in detail["drivers"]] == ["dau_mau_30d", "tenure_days"]
    assert detail["previous_probability"] == 0.25
    assert "extra" not in detail["change_drivers"][0]
    assert detail["change_drivers"][0]["after"] == 0.1


def test_export_columns_and_values_are_the_declared_ones() -> None:
    # the declared export fields, then the run's columns: the columns a CRM has imported
    assert [f.export for f in EXPORT_FIELDS] == [
        "account_id",
        "name",
        "segment",
        "plan",
        "owner",
        "risk_tier",
        "churn_probability",
        "probability_change",
        "mrr",
        "mrr_at_risk",
        "revenue_12m",
        "lifetime_clv",
        "renewal_date",
        "days_to_renewal",
        "renewal_mrr",
        "top_drivers",
    ]
    assert RUN_COLUMNS == ("as_of", "updated_at", "run_id", "churn_version")
    assert (*(f.export for f in EXPORT_FIELDS), *RUN_COLUMNS) == CSV_COLUMNS
    run, _ = sample_run("2026-10-01", "2026-10-02T06:00", [score_row("a1", 0.3)], run_id="r1")
    out = export_row(STORED, run)
    assert list(out) == list(CSV_COLUMNS)
    assert (out["renewal_date"], out["days_to_renewal"]) == ("2026-11-30", 13)
    assert out["renewal_mrr"] == 250.0
    assert out["top_drivers"] == ["meaning of dau_mau_30d = 0.08, raises risk"]
    assert (out["run_id"], out["as_of"]) == ("r1", "2026-10-01")
    text = "".join(_csv(run, iter([[STORED]]), spreadsheet=False))
    header, first = list(csv.reader(io.StringIO(text)))
    assert header == list(CSV_COLUMNS)
    assert first[CSV_COLUMNS.index("days_to_renewal")] == "13"


def test_json_value_by_kind() -> None:
    whole = FIELDS_BY_NAME["days_to_renewal"]
    assert json_value(whole, float("nan"), answer="list") is None
    assert json_value(whole, 2.5, answer="export") == 2  # round half to even
    assert json_value(FIELDS_BY_NAME["renewal_date"], None, answer="export") is None
    assert json_value(FIELDS_BY_NAME["context"], None, answer="detail") == []
    lowers = [{"direction": "lowers", "text": "t"}]
    assert json_value(FIELDS_BY_NAME["drivers"], lowers, answer="detail") == lowers
    assert json_value(FIELDS_BY_NAME["drivers"], lowers, answer="list") == []
