"""What a run records: the data fingerprint, flat parameters and metrics, the tags.

Pure functions (no mlflow): the run logger writes what they return, the gate compares it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from churnrisk.config import RunConfig
from churnrisk.errors import ConfigError

TAG_KIND = "churnrisk.kind"
TAG_FINGERPRINT = "churnrisk.fingerprint"
TAG_BACKTEST = "churnrisk.backtest_config"
TAG_GATE = "churnrisk.gate"

_CHUNK = 1 << 20


def fingerprint(path: Path) -> str:
    """Return a deterministic SHA-256 fingerprint of a data file or folder.

    Files are visited in sorted order of their relative paths; each contributes its
    relative path, its size and its contents (read in 1 MiB chunks), so renaming,
    adding, removing or editing a file changes the fingerprint while modification times
    do not.

    Parameters
    ----------
    path
        A data folder (every regular file below it counts) or a single file.

    Returns
    -------
    str
        64 hexadecimal digits.

    Raises
    ------
    ConfigError
        When ``path`` does not exist or cannot be read.
    """
    path = Path(path)
    if path.is_file():
        files = [path]
        root = path.parent
    elif path.is_dir():
        root = path
        files = sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.as_posix())
    else:
        raise ConfigError(f"cannot fingerprint {path}: no such file or folder")
    digest = hashlib.sha256()
    try:
        for file in files:
            rel = file.relative_to(root).as_posix().encode("utf-8")
            digest.update(len(rel).to_bytes(8, "big") + rel)
            digest.update(file.stat().st_size.to_bytes(8, "big"))
            with file.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
    except OSError as err:
        raise ConfigError(f"cannot fingerprint {path}: {err}") from err
    return digest.hexdigest()


def flatten_params(config: RunConfig) -> dict[str, str]:
    """Return the resolved configuration as flat MLflow parameters (``churn.learning_rate``)."""
    return {k: _text(v) for k, v in _flatten(config.model_dump(mode="json")).items()}


def flatten_metrics(backtest: Mapping[str, Any]) -> dict[str, float]:
    """Return the overall backtest metrics as flat names such as ``churn.model.pr_auc``.

    Parameters
    ----------
    backtest
        The JSON shape of a backtest (``BacktestResult.to_dict()``), or metrics already
        flat. The ``folds`` list and the ``plan`` (dates and counts, not metrics) are left
        out; missing (``None``) and non-finite values are dropped.
    """
    flat = _flatten({k: v for k, v in backtest.items() if k not in ("folds", "plan")})
    return {k: float(v) for k, v in flat.items() if _is_number(v)}


def _flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def backtest_key(config: RunConfig) -> str:
    """Return what makes two backtests comparable: the label and backtest settings.

    Two backtests on the same data fingerprint with the same key test the same rows
    against the same labels, so their metrics can be compared.
    """
    payload = {
        "labels": config.labels.model_dump(mode="json"),
        "backtest": config.backtest.model_dump(mode="json"),
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def _differences(champion_key: str, new_key: str) -> str:
    """Name the settings where two :func:`backtest_key` values differ."""
    try:
        old, new = _flatten(json.loads(champion_key)), _flatten(json.loads(new_key))
    except ValueError:
        return "unrecorded"
    diff = [
        f"{k} {old.get(k)} vs {new.get(k)}"
        for k in sorted(old.keys() | new.keys())
        if old.get(k) != new.get(k)
    ]
    return ", ".join(diff) or "unrecorded"


def _fold_metrics(backtest: Mapping[str, Any]) -> list[dict[str, float]]:
    out = []
    for fold in backtest.get("folds") or []:
        flat = _flatten({k: v for k, v in fold.items() if k in ("churn", "clv")})
        for k in ("n_train", "n_test"):
            flat[k] = fold.get(k)
        out.append({f"folds.{k}": float(v) for k, v in flat.items() if _is_number(v)})
    return out


def pip_requirements() -> list[str]:
    """Return churnrisk's runtime dependencies pinned to the installed versions.

    Logged with each model so that MLflow does not infer an environment (slow, and it
    may reach the network). churnrisk itself is not listed: it is not on a public index,
    and a loading environment must have it installed.
    """
    from importlib import metadata

    from packaging.requirements import Requirement

    try:
        declared = metadata.requires("churnrisk") or []
    except metadata.PackageNotFoundError:
        declared = []
    pins = []
    for text in declared:
        req = Requirement(text)
        if req.marker is not None:
            continue
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        try:
            pins.append(f"{req.name}{extras}=={metadata.version(req.name)}")
        except metadata.PackageNotFoundError:
            pins.append(str(req))
    return pins


def _wire(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` as MLflow schemas accept it: categories as plain strings."""
    out = frame.copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.CategoricalDtype):
            col = out[name].astype("string").astype(object)
            out[name] = col.where(col.notna(), None)
    return out
