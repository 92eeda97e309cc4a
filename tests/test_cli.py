"""The CLI end to end on a small generated world: exit codes, outputs, one-line errors."""

import json
import subprocess
import sys

import pandas as pd
import pytest
from cli_invoke import invoke

from churnrisk.features import FEATURES
from churnrisk.metrics import METRIC_KEYS


def run(args, capsys):
    """Run the CLI in process; return (exit code, stdout, stderr)."""
    code = invoke(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world")
    assert invoke(["generate", "--out", folder, "--accounts", 80, "--months", 8, "--seed", 3]) == 0
    return folder


def test_generate_says_what_it_wrote(world, tmp_path, capsys):
    code, out, _ = run(
        ["generate", "--out", tmp_path, "--accounts", "10", "--months", "3", "--format", "csv"],
        capsys,
    )
    assert code == 0
    assert f"in {tmp_path}" in out
    assert out.startswith("generated 10 accounts")
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == sorted(
        f"{t}.csv"
        for t in ("accounts", "subscriptions", "events", "tickets", "nps", "orders", "costs")
    )


def test_validate_clean_world_exits_0_and_writes_report(world, tmp_path, capsys):
    report = tmp_path / "report.json"
    code, out, _ = run(["validate", world, "--report", report], capsys)
    assert code == 0
    assert "clean" in out.splitlines()[-1]
    body = json.loads(report.read_text())
    assert set(body) == {"tables", "causes", "problems"}
    assert body["problems"] == body["causes"] == []
    for counts in body["tables"].values():
        assert counts["rows"] == counts["valid"] + counts["quarantined"]


def test_validate_quarantines_bad_rows_and_exits_1(tmp_path, capsys):
    (tmp_path / "accounts.csv").write_text("account_id,created_at\na,2026-01-01\nb,2026-01-02\n")
    (tmp_path / "subscriptions.csv").write_text(
        "account_id,start_date,end_date,mrr\na,2026-01-01,,100\nb,2026-01-02,,-5\n"
    )
    report, quarantine = tmp_path / "r.json", tmp_path / "q"
    code, out, _ = run(
        ["validate", tmp_path, "--report", report, "--quarantine", quarantine], capsys
    )
    assert code == 1
    body = json.loads(report.read_text())
    assert body["tables"]["subscriptions"] == {"rows": 2, "valid": 1, "quarantined": 1}
    assert body["problems"] == [
        {"table": "subscriptions", "row": 2, "column": "mrr", "rule": "negative", "value": "-5"}
    ]
    assert (quarantine / "subscriptions.csv").exists()
    assert "1 bad row(s) set aside" in out


def test_unusable_input_is_one_line_exit_2_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "churnrisk", "validate", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("error:")


def test_features_list_shows_every_registered_feature(capsys):
    code, out, _ = run(["features", "list"], capsys)
    assert code == 0
    assert len(FEATURES) >= 30
    for feature in FEATURES:
        assert feature.name in out


def test_features_describe_unknown_name_exits_1(capsys):
    code, _, err = run(["features", "describe", "no_such_feature"], capsys)
    assert code == 1
    assert "no_such_feature" in err


def test_features_build_with_labels(world, tmp_path, capsys):
    target = tmp_path / "panel.parquet"
    code, out, _ = run(
        [
            "features",
            "build",
            world,
            "--start",
            "2025-02-01",
            "--end",
            "2025-06-01",
            "--with-labels",
            "--out",
            target,
        ],
        capsys,
    )
    assert code == 0
    panel = pd.read_parquet(target)
    assert {"account_id", "as_of", "churned", "revenue_next_12m"} <= set(panel.columns)
    assert panel["as_of"].nunique() == 5
    assert not panel.duplicated(["account_id", "as_of"]).any()
    assert f"built {len(panel):,} rows" in out


def test_features_build_rejects_a_bad_date(world, tmp_path, capsys):
    code, _, err = run(
        ["features", "build", world, "--as-of", "2025-13-01", "--out", tmp_path / "x.parquet"],
        capsys,
    )
    assert code == 1
    assert "--as-of '2025-13-01' is not a date" in err


def test_metrics_json_has_exactly_the_design_keys(world, capsys):
    code, out, _ = run(["metrics", world, "--period", "2025-05", "--format", "json"], capsys)
    assert code == 0
    body = json.loads(out)
    assert set(body) == {*METRIC_KEYS, "period", "segment", "notes"}
    assert body["period"] == "2025-05"


def test_metrics_rejects_a_bad_period(world, capsys):
    code, _, err = run(["metrics", world, "--period", "October"], capsys)
    assert code == 1
    assert "October" in err


def test_metrics_refuses_a_period_after_the_data(world, capsys):
    # the world runs 8 months from 2024-11-01: the last day observed is 2025-06-30
    code, out, err = run(["metrics", world, "--period", "2025-07"], capsys)
    assert code == 2
    assert out == ""
    assert err == (
        "error: period 2025-07 starts after the data ends: the last day observed is"
        " 2025-06-30, and days nobody observed would count as churn; ask for 2025-06 or an"
        " earlier period\n"
    )
