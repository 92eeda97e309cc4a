"""Run configuration: frozen pydantic models with defaults in code and a TOML override.

Only entry points (the CLI, the API lifespan) read files or the environment; stage
functions receive these objects as arguments.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from churnrisk.errors import ConfigError


class LabelConfig(BaseModel):
    """How churn and revenue labels are defined.

    Attributes
    ----------
    horizon_days
        Length of the label window ``[as_of, as_of + horizon_days)`` in days.
    grace_days
        An account churns on the day its MRR falls to zero and stays zero for at least
        this many days; a return within the grace period is not churn.
    revenue_months
        Length of the revenue (CLV target) window in months of 30 days.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    horizon_days: int = Field(default=90, ge=1, le=730)
    grace_days: int = Field(default=30, ge=0, le=365)
    revenue_months: int = Field(default=12, ge=1, le=60)


class RunConfig(BaseModel):
    """The whole resolved configuration of a run; logged with every run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    labels: LabelConfig = LabelConfig()


def load_run_config(path: Path | None) -> RunConfig:
    """Read a run configuration from a TOML file, or return the defaults.

    Parameters
    ----------
    path
        A TOML file whose tables (``[labels]``) override the defaults,
        or ``None`` for the defaults.

    Raises
    ------
    ConfigError
        When the file cannot be read or holds an unknown key or a value out of range.
    """
    if path is None:
        return RunConfig()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read configuration {path}: {err}") from err
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"configuration {path}: {where}: {first['msg']}"
            " (see the README's configuration section)"
        ) from err
