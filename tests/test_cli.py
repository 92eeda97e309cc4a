"""The CLI end to end on a small generated world: exit codes, outputs, one-line errors."""

import json
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import typer
from cli_invoke import invoke

from churnrisk.cli import app
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
        for t in (
            "accounts",
            "subscriptions",
            "events",
            "tickets",
            "nps",
            "orders",
            "costs",
            "activities",
        )
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
    assert set(body) == {*METRIC_KEYS, "period", "segment", "notes", "units"}
    assert body["period"] == "2025-05"
    assert (body["units"]["cs_roi"], body["units"]["churn_rate"]) == ("money", "percent")


def test_metrics_table_gives_each_value_its_unit(world, capsys):
    code, out, _ = run(["metrics", world, "--period", "2025-05"], capsys)
    assert code == 0
    code, doc, _ = run(["metrics", world, "--period", "2025-05", "--format", "json"], capsys)
    body = json.loads(doc)
    cells = [line.split("│")[1:4] for line in out.splitlines() if line.startswith("│")]
    shown = {
        key.strip(): (value.strip(), unit.strip()) for key, value, unit in cells if key.strip()
    }
    assert list(shown) == list(METRIC_KEYS)
    assert shown["customers_start"] == (f"{body['customers_start']:,}", "accounts")
    assert shown["churn_rate"] == (f"{body['churn_rate']:,.2f}", "percent")
    assert shown["mrr_start"] == (f"{body['mrr_start']:,.2f}", "money per month")
    assert shown["dau_mau"] == (f"{body['dau_mau']:.3f}", "ratio")
    assert shown["cs_roi"] == (f"{body['cs_roi']:,.2f}", "money")


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


def command_paths(group, path=()):
    """Every command of the CLI as its words (``("features", "build")``), with its click object."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from command_paths(command, (*path, name))
        else:
            yield (*path, name), command


def squeezed(text):
    """``text`` without any whitespace, so that line wrapping does not matter."""
    return "".join(text.split())


COMMANDS = list(command_paths(typer.main.get_command(app)))


@pytest.mark.parametrize(("words", "command"), COMMANDS, ids=[" ".join(w) for w, _ in COMMANDS])
def test_help_shows_every_text_as_written(words, command, capsys):
    """No help text is eaten as markup ([scoring]) or shown as reST (``--out``)."""
    code, out, _ = run([*words, "--help"], capsys)
    assert code == 0
    shown = squeezed(out)
    assert squeezed(command.help) in shown
    for param in command.params:
        if getattr(param, "help", None):
            assert squeezed(param.help) in shown, param.name
    for markup in ("``", ":class:", ":data:", ":func:"):
        assert markup not in out


def churnrisk(*args, home, prefix=()):
    """Run ``churnrisk ARGS`` in a child process with its stores in ``home``."""
    env = {**os.environ, "CHURNRISK_DATA_DIR": str(home)}
    env.pop("CHURNRISK_DATABASE_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [*prefix, sys.executable, "-m", "churnrisk", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


@contextmanager
def busy_port(host):
    """Listen on a free port of ``host``; yield the port."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "0.0.0.0"])
def test_serve_on_a_busy_port_says_so_in_one_line(host, tmp_path):
    with busy_port("127.0.0.1" if host == "0.0.0.0" else host) as port:
        done = churnrisk("serve", "--host", host, "--port", port, home=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"error: port {port} on {host} is in use: pass --port with a free port\n"
    assert list(tmp_path.iterdir()) == []  # said before anything was opened or migrated


def test_demo_finds_the_busy_port_before_it_starts_working(tmp_path):
    out_dir = tmp_path / "demo"
    with busy_port("127.0.0.1") as port:
        done = churnrisk(
            "demo", "--out", out_dir, "--accounts", 50, "--months", 6, "--port", port, home=tmp_path
        )
    assert (done.returncode, done.stdout) == (1, "")
    assert (
        done.stderr == f"error: port {port} on 127.0.0.1 is in use: pass --port with a free port\n"
    )
    assert not out_dir.exists()


def test_serve_on_an_address_of_another_machine_says_so(tmp_path):
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never an address of this machine
    done = churnrisk("serve", "--host", "192.0.2.1", "--port", 8000, home=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "error: cannot listen on 192.0.2.1: it is not an address of this machine; pass --host"
        " with one of its addresses (127.0.0.1, or 0.0.0.0 for all)\n"
    )


UNPRIVILEGED_FROM = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


@pytest.mark.skipif(
    UNPRIVILEGED_FROM.exists() and int(UNPRIVILEGED_FROM.read_text()) <= 80,
    reason="this machine lets every user listen on port 80",
)
def test_serve_on_a_privileged_port_as_a_user_says_so(tmp_path):
    # as root, run it as the user nobody (setpriv, util-linux); otherwise as this user
    prefix = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    done = churnrisk(
        "serve", "--port", 80, home=tmp_path, prefix=prefix if os.geteuid() == 0 else ()
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "error: port 80 on 127.0.0.1 is privileged (below 1024) and this user may not listen"
        " there: pass --port 1024 or higher\n"
    )
