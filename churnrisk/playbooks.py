"""Playbooks: plain, auditable rules that map an account's score to recommended plays.

A playbook is a TOML file of plays, each a name, a short text and the conditions under
which it applies::

    [[play]]
    name = "Renewal rescue"
    text = "Book an executive call before the renewal ..."
    when = { tier = ["high"], renewal_within_days = 60 }

Every condition given must hold; a list matches any of its values. The conditions:

``tier``
    The account's risk tier.
``driver_family``
    The family (usage, engagement, tickets, nps, billing, account) of a driver that
    raises the account's risk.
``renewal_within_days``
    Days to the next renewal (or term end), at most this many; an account without a
    known renewal date does not match.
``mrr_min``, ``mrr_max``
    MRR at least / below this (the data's own currency).
``mrr_top_percent``
    The account's MRR is among the largest ``mrr_top_percent`` percent of the run's
    book: fewer than that share of the run's accounts have a larger MRR. Relative, so
    one playbook fits a book of any size and currency (the default playbook uses it).
``segment``
    The account's segment.

A match says why it matched, one reason per condition, so the play can be checked
against the account by whoever reads it. The default playbook (``playbooks.toml`` in this
package) is a starting point for the demo; a team replaces it with its own file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from churnrisk.errors import ConfigError
from churnrisk.features.registry import Family, get_feature


class Conditions(BaseModel):
    """When a play applies (see the module docstring); an empty set matches every account."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tier: list[str] | None = Field(default=None, min_length=1)
    driver_family: list[Family] | None = Field(default=None, min_length=1)
    renewal_within_days: int | None = Field(default=None, ge=0)
    mrr_min: float | None = Field(default=None, ge=0)
    mrr_max: float | None = Field(default=None, gt=0)
    mrr_top_percent: float | None = Field(default=None, gt=0, le=100)
    segment: list[str] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _band(self) -> Conditions:
        if self.mrr_min is not None and self.mrr_max is not None and self.mrr_max <= self.mrr_min:
            raise ValueError("mrr_max must be above mrr_min")
        return self


class Play(BaseModel):
    """One recommended play."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    text: str = Field(min_length=1, max_length=1000)
    when: Conditions = Field(default_factory=Conditions)


class Playbook(BaseModel):
    """The plays, in the order the file lists them (the order they are shown in)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    play: list[Play] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Playbook:
        names = [p.name for p in self.play]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"play names must be unique; repeated: {', '.join(twice)}")
        return self


@dataclass(frozen=True)
class BookRank:
    """Where an account's MRR stands in its run: ``larger`` of the run's ``accounts`` have more."""

    larger: int
    accounts: int


@dataclass(frozen=True)
class Match:
    """A play that applies to an account, and why."""

    name: str
    text: str
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        """Return the match as JSON values."""
        return {"name": self.name, "text": self.text, "reasons": list(self.reasons)}


def load_playbook(path: Path | None = None) -> Playbook:
    """Read a playbook file, or the default playbook when ``path`` is ``None``.

    Raises
    ------
    ConfigError
        When the file cannot be read, is not TOML, or holds an unknown key or a bad value.
    """
    if path is None:
        where = "the default playbook"
        text = resources.files("churnrisk").joinpath("playbooks.toml").read_text("utf-8")
    else:
        where = f"playbook {path}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(
                f"cannot read playbook {path}: {err.strerror}; check the path"
            ) from err
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{where} is not valid TOML: {err}") from err
    try:
        return Playbook.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        at = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"{where}: {at}: {first['msg']} (see churnrisk.playbooks for the format)"
        ) from err


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _reasons(
    when: Conditions, account: Mapping[str, Any], rank: BookRank | None
) -> list[str] | None:
    """Return why ``account`` meets every condition of ``when``, or ``None`` if it fails one."""
    reasons = []
    if when.tier is not None:
        tier = account.get("risk_tier")
        if tier not in when.tier:
            return None
        reasons.append(f"tier is {tier}")
    if when.driver_family is not None:
        found = _raising_driver(account.get("drivers") or (), when.driver_family)
        if found is None:
            return None
        reasons.append(found)
    if when.renewal_within_days is not None:
        days = account.get("days_to_renewal")
        if days is None or days != days or days > when.renewal_within_days:  # NaN: unknown
            return None
        reasons.append(f"renews in {int(days)} days (within {when.renewal_within_days})")
    mrr = float(account.get("mrr") or 0.0)
    if when.mrr_min is not None:
        if mrr < when.mrr_min:
            return None
        reasons.append(f"MRR {_money(mrr)} is at least {_money(when.mrr_min)}")
    if when.mrr_max is not None:
        if mrr >= when.mrr_max:
            return None
        reasons.append(f"MRR {_money(mrr)} is below {_money(when.mrr_max)}")
    if when.mrr_top_percent is not None:
        if rank is None or rank.larger * 100 >= when.mrr_top_percent * rank.accounts:
            return None
        reasons.append(
            f"MRR {_money(mrr)} is in the top {when.mrr_top_percent:g}% of the book"
            f" ({_ordinal(rank.larger + 1)} of {rank.accounts:,})"
        )
    if when.segment is not None:
        segment = account.get("segment")
        if segment not in when.segment:
            return None
        reasons.append(f"segment is {segment}")
    return reasons


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def _raising_driver(drivers: Sequence[Mapping[str, Any]], families: Sequence[str]) -> str | None:
    """Return the reason for the strongest risk-raising driver of ``families``, if any."""
    for driver in drivers:  # the risers come first, largest first
        if driver.get("direction") != "raises":
            continue
        try:
            feature = get_feature(str(driver.get("feature")))
        except KeyError:
            continue
        if feature.family in families:
            return f"{feature.meaning} ({feature.family}) raises risk"
    return None


def match(
    playbook: Playbook, account: Mapping[str, Any], *, rank: BookRank | None = None
) -> list[Match]:
    """Return the plays that apply to one scored account, in playbook order.

    Parameters
    ----------
    playbook
        The plays.
    account
        A score row: ``risk_tier``, ``mrr``, ``days_to_renewal``, ``segment`` and
        ``drivers`` (``{"feature", "direction", ...}`` items, risers first), as the
        store and the API hold it.
    rank
        Where the account's MRR stands in its run (:meth:`ScoreStore.mrr_rank`); without
        it, no ``mrr_top_percent`` condition holds.
    """
    found = []
    for play in playbook.play:
        reasons = _reasons(play.when, account, rank)
        if reasons is not None:
            found.append(Match(play.name, play.text, reasons or ["applies to every account"]))
    return found
