"""Process settings, read from the environment by entry points only (the CLI callback).

``CHURNRISK_DATA_DIR`` is where churnrisk keeps what it makes for you: the embedded
MLflow store (``mlflow.db``) and its artifacts, and the score store (``scores.db``).
``MLFLOW_TRACKING_URI`` points tracking at a team's MLflow server instead of the embedded
store, and ``CHURNRISK_DATABASE_URL`` the score store at a database server.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "churnrisk"


class Settings(BaseSettings):
    """Settings of one churnrisk process.

    Attributes
    ----------
    data_dir
        Folder for the embedded MLflow store and artifacts (``CHURNRISK_DATA_DIR``;
        default ``$XDG_DATA_HOME/churnrisk``, i.e. ``~/.local/share/churnrisk``).
    mlflow_tracking_uri
        An MLflow tracking server or store (``MLFLOW_TRACKING_URI``); empty means the
        embedded SQLite store under :attr:`data_dir`.
    database_url
        SQLAlchemy URL of the score store (``CHURNRISK_DATABASE_URL``), e.g.
        ``postgresql+psycopg://user@host:5432/db``; empty means the SQLite file
        ``scores.db`` under :attr:`data_dir`.
    data
        The data source the service computes metrics from (``CHURNRISK_DATA``): a folder
        of tables or a DuckDB file, as the CLI takes it; empty means no metrics.
    alerts
        The alerts file (``CHURNRISK_ALERTS``): webhooks, e-mail and the rules of
        :mod:`churnrisk.alerts`; empty means scoring runs send no alerts.
    playbook
        The playbook file (``CHURNRISK_PLAYBOOK``, :mod:`churnrisk.playbooks`) whose plays
        the service matches to each account; empty means the default playbook.
    model_check_seconds
        How often the service asks the model registry whether the ``champion`` alias
        moved, and loads the new champion if it did (``CHURNRISK_MODEL_CHECK_SECONDS``;
        default 60; 0 never checks, so a promotion then needs a restart).
    """

    model_config = SettingsConfigDict(env_prefix="CHURNRISK_", frozen=True, extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "CHURNRISK_MLFLOW_TRACKING_URI"),
    )
    database_url: str | None = None
    data: Path | None = None
    alerts: Path | None = None
    playbook: Path | None = None
    model_check_seconds: float = Field(default=60.0, ge=0.0)

    @property
    def store_url(self) -> str:
        """The score store's URL: :attr:`database_url`, else ``scores.db`` in the data dir."""
        return self.database_url or f"sqlite:///{self.data_dir / 'scores.db'}"

    def environment(self) -> dict[str, str]:
        """Return the settings given explicitly (by the environment or in code) as variables.

        For processes started with these settings that read theirs from the environment
        (the workers of ``churnrisk serve --workers N``): a setting left at its default
        is left out, so such a process computes the same default.
        """
        names = {"mlflow_tracking_uri": "MLFLOW_TRACKING_URI"}
        return {
            names.get(name, f"CHURNRISK_{name.upper()}"): str(getattr(self, name))
            for name in sorted(self.model_fields_set)
            if getattr(self, name) is not None
        }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process settings, read once from the environment."""
    return Settings()
