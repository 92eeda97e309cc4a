import pytest

from churnrisk.config import LabelConfig, RunConfig, load_run_config
from churnrisk.errors import ConfigError


def test_no_file_gives_the_defaults():
    assert load_run_config(None) == RunConfig()
    assert RunConfig().labels == LabelConfig(horizon_days=90, grace_days=30, revenue_months=12)


def test_toml_overrides_only_what_it_names(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[labels]\nhorizon_days = 60\n")
    assert load_run_config(path).labels == LabelConfig(horizon_days=60)


def test_unknown_key_is_a_one_line_error(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[labels]\nhorizon = 60\n")
    with pytest.raises(ConfigError, match=r"run.toml: labels.horizon: Extra inputs"):
        load_run_config(path)


def test_value_out_of_range_is_an_error(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[labels]\ngrace_days = -1\n")
    with pytest.raises(ConfigError, match=r"labels.grace_days: Input should be greater"):
        load_run_config(path)


def test_unreadable_toml_is_an_error(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[labels\n")
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_run_config(path)
