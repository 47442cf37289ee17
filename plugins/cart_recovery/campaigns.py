"""Campaign files (contract §6): load, validate, fill defaults, hand to dbt as vars.

A campaign is a YAML file in the folder named by the Airflow Variable `cart_recovery_campaigns_dir`
(`AIRFLOW_VAR_CART_RECOVERY_CAMPAIGNS_DIR`; default: the project's `include/campaigns/`). The folder is
read at run time only — never when a DAG file is parsed.

Every problem raises `CampaignError` naming the file and the key (`multi_touch.yml: steps[2].channels: …`),
so an analyst who edits a campaign learns what to fix from the task log alone.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cart_recovery import CAMPAIGNS_DIR, TEMPLATES_DIR

log = logging.getLogger(__name__)

VARIABLE = "cart_recovery_campaigns_dir"
CADENCES = ("daily", "hourly")
AUDIENCES = ("all", "test_group")
LOCALES = ("fr", "en")
CHANNELS = ("email", "sms", "push")
# names go into idempotency keys joined with ':' and into custom_args: keep them plain
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
TEMPLATE_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class CampaignError(ValueError):
    """A campaign file is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class Step:
    """One step of a sequence (F1). `step` is 1-based; `coupon_tiers` None means "the campaign's"."""

    step: int
    channels: tuple[str, ...] = ("email",)
    delay_minutes: int = 0
    template: str = "abandoned_cart"
    only_if_not_engaged: bool = False
    coupon_tiers: str | None = None


@dataclass(frozen=True)
class Campaign:
    name: str
    enabled: bool = False
    cadence: str = "daily"
    audience: str = "all"
    default_locale: str = "fr"
    abandon_after_minutes: int = 60
    max_cart_age_hours: int = 24
    frequency_cap_days: int = 7
    holdout_percent: float = 0
    max_items: int = 4
    coupon_tiers: str = "none"
    implied_consent_days: int = 730
    attribution_window_hours: int = 24
    steps: tuple[Step, ...] = ()
    source: Path | None = field(default=None, compare=False)

    def step_for(self, number: int) -> Step:
        for s in self.steps:
            if s.step == number:
                return s
        raise KeyError(f"campaign {self.name} has no step {number}")

    def coupon_tiers_for(self, number: int) -> str:
        """The tier set a step draws from: its own override, else the campaign's (`none`: no coupon)."""
        override = self.step_for(number).coupon_tiers
        return override if override is not None else self.coupon_tiers


# key -> accepted python types; the defaults are the dataclasses' (Campaign, Step): the one place a
# campaign default is written (dbt gets every setting filled in, `to_dbt_vars`)
_CAMPAIGN_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "enabled": (bool,),
    "cadence": (str,),
    "audience": (str,),
    "default_locale": (str,),
    "abandon_after_minutes": (int,),
    "max_cart_age_hours": (int,),
    "frequency_cap_days": (int,),
    "holdout_percent": (int, float),
    "max_items": (int,),
    "coupon_tiers": (str,),
    "implied_consent_days": (int,),
    "attribution_window_hours": (int,),
    "steps": (list,),
    "description": (str,),  # free text for the analyst; not passed on
}
_STEP_TYPES: dict[str, tuple[type, ...]] = {
    "channels": (list,),
    "channel": (str,),  # shorthand for channels: [x]
    "delay_minutes": (int,),
    "template": (str,),
    "only_if_not_engaged": (bool,),
    "coupon_tiers": (str, type(None)),
    "description": (str,),
}
_CAMPAIGN_DEFAULTS = {f.name: f.default for f in fields(Campaign) if f.name not in ("steps", "source")}
_STEP_DEFAULTS = {f.name: f.default for f in fields(Step) if f.name != "step"}

# Which steps a run decides, by its scope (contract §3, F1), the one place the rule is written: `daily` (and
# `backfill`, which decides as daily over lookback_days, O3) decides step 1 of the `daily` campaigns;
# `followups` (the hourly run) every step of the `hourly` campaigns and steps >= 2 of the `daily` ones.
SCOPES = ("daily", "followups", "backfill")


def decides(campaign: Campaign, step: int, scope: str) -> bool:
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r}: one of {', '.join(SCOPES)}")
    if scope == "followups":
        return campaign.cadence == "hourly" or step > 1
    return campaign.cadence == "daily" and step == 1


def in_scope(campaign: Campaign, scope: str) -> bool:
    """Whether a campaign has a step the scope's runs decide."""
    return any(decides(campaign, s.step, scope) for s in campaign.steps)


def _type_name(types: tuple[type, ...]) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list"}
    return " or ".join(names.get(t, "null") for t in types)


def _check_type(where: str, key: str, value: Any, types: tuple[type, ...]) -> None:
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        raise CampaignError(f"{where}: {key}: expected {_type_name(types)}, got {value!r}")


def _check_enum(where: str, key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise CampaignError(f"{where}: {key}: {value!r} is not one of {', '.join(allowed)}")


def _check_min(where: str, key: str, value: float, minimum: float, maximum: float | None = None) -> None:
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise CampaignError(f"{where}: {key}: {value!r} must be {bound}")


def _template_exists(name: str, channel: str) -> bool:
    return (TEMPLATES_DIR / channel / name).is_dir()


def _parse_step(where: str, index: int, raw: Any) -> Step:
    key0 = f"steps[{index}]"
    if not isinstance(raw, dict):
        raise CampaignError(f"{where}: {key0}: expected a mapping, got {raw!r}")
    for key in raw:
        if key not in _STEP_TYPES:
            raise CampaignError(f"{where}: {key0}.{key}: unknown key (known: {', '.join(sorted(_STEP_TYPES))})")
    for key, value in raw.items():
        _check_type(where, f"{key0}.{key}", value, _STEP_TYPES[key])
    if "channel" in raw and "channels" in raw:
        raise CampaignError(f"{where}: {key0}.channel: give either channel or channels, not both")
    channels = raw.get("channels", [raw["channel"]] if "channel" in raw else None)
    if not channels:
        raise CampaignError(f"{where}: {key0}.channels: missing or empty (an ordered list, e.g. [email])")
    for i, ch in enumerate(channels):
        if not isinstance(ch, str):
            raise CampaignError(f"{where}: {key0}.channels[{i}]: expected a string, got {ch!r}")
        _check_enum(where, f"{key0}.channels[{i}]", ch, CHANNELS)
    if len(set(channels)) != len(channels):
        raise CampaignError(f"{where}: {key0}.channels: a channel is listed twice: {channels}")
    delay = raw.get("delay_minutes", _STEP_DEFAULTS["delay_minutes"])
    _check_min(where, f"{key0}.delay_minutes", delay, 0)
    template = raw.get("template", _STEP_DEFAULTS["template"])
    if not TEMPLATE_RE.match(template):
        raise CampaignError(f"{where}: {key0}.template: {template!r} is not a template name (lower_snake_case)")
    # M7: an email step's template must exist, so a typo fails at load and not at 09:00
    if "email" in channels and not _template_exists(template, "email"):
        raise CampaignError(f"{where}: {key0}.template: no email template {template!r} in {TEMPLATES_DIR / 'email'}")
    tiers = raw.get("coupon_tiers", _STEP_DEFAULTS["coupon_tiers"])
    if tiers is not None and not NAME_RE.match(tiers):
        raise CampaignError(f"{where}: {key0}.coupon_tiers: {tiers!r} is not a tier set name (or none)")
    return Step(
        step=index + 1,
        channels=tuple(channels),
        delay_minutes=delay,
        template=template,
        only_if_not_engaged=raw.get("only_if_not_engaged", _STEP_DEFAULTS["only_if_not_engaged"]),
        coupon_tiers=tiers,
    )


def parse_campaign(raw: Any, source: Path | str = "<campaign>") -> Campaign:
    """Validate one campaign mapping (a parsed YAML file) and fill its defaults."""
    where = Path(source).name if not isinstance(source, str) else source
    if not isinstance(raw, dict):
        raise CampaignError(f"{where}: expected a mapping of campaign keys at the top level, got {type(raw).__name__}")
    for key in raw:
        if key not in _CAMPAIGN_TYPES:
            raise CampaignError(f"{where}: {key}: unknown key (known: {', '.join(sorted(_CAMPAIGN_TYPES))})")
    for key, value in raw.items():
        _check_type(where, key, value, _CAMPAIGN_TYPES[key])
    if "name" not in raw:
        raise CampaignError(f"{where}: name: missing")
    if not NAME_RE.match(raw["name"]):
        raise CampaignError(f"{where}: name: {raw['name']!r} must be lower_snake_case (a-z, 0-9, _)")
    values = {k: raw.get(k, default) for k, default in _CAMPAIGN_DEFAULTS.items()}
    _check_enum(where, "cadence", values["cadence"], CADENCES)
    _check_enum(where, "audience", values["audience"], AUDIENCES)
    _check_enum(where, "default_locale", values["default_locale"], LOCALES)
    for key in ("abandon_after_minutes", "frequency_cap_days"):
        _check_min(where, key, values[key], 0)
    for key in ("max_cart_age_hours", "max_items", "implied_consent_days", "attribution_window_hours"):
        _check_min(where, key, values[key], 1)
    _check_min(where, "holdout_percent", values["holdout_percent"], 0, 100)
    if not NAME_RE.match(values["coupon_tiers"]):
        raise CampaignError(f"{where}: coupon_tiers: {values['coupon_tiers']!r} is not a tier set name (or none)")
    steps_raw = raw.get("steps")
    if not steps_raw:
        raise CampaignError(f"{where}: steps: missing or empty (a campaign needs at least one step)")
    steps = tuple(_parse_step(where, i, s) for i, s in enumerate(steps_raw))
    return Campaign(**values, steps=steps, source=Path(source) if not isinstance(source, str) else None)


def load_campaign_file(path: Path) -> Campaign:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CampaignError(f"{path.name}: not valid YAML: {exc}") from exc
    return parse_campaign(raw, path)


def campaigns_dir() -> Path:
    """The campaigns folder: env form of the Variable first (no Airflow import), else Variable.get (run time)."""
    value = os.environ.get("AIRFLOW_VAR_CART_RECOVERY_CAMPAIGNS_DIR")
    if not value:
        from airflow.sdk import Variable

        value = Variable.get(VARIABLE, default=str(CAMPAIGNS_DIR))
    return Path(value)


def load_campaigns(folder: Path | None = None) -> list[Campaign]:
    """Every campaign file of the folder (*.yml, *.yaml), enabled or not, sorted by name."""
    folder = folder or campaigns_dir()
    if not folder.is_dir():
        raise CampaignError(f"{folder}: campaigns folder does not exist (Variable {VARIABLE})")
    campaigns: dict[str, Campaign] = {}
    for path in sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]):
        c = load_campaign_file(path)
        if c.name in campaigns:
            other = campaigns[c.name].source
            raise CampaignError(f"{path.name}: name: {c.name!r} is already used by {other.name if other else '?'}")
        campaigns[c.name] = c
    log.info(
        "campaigns in %s: %s",
        folder,
        ", ".join(f"{n}{'' if c.enabled else ' (disabled)'}" for n, c in sorted(campaigns.items())),
    )
    return [campaigns[n] for n in sorted(campaigns)]


def get_campaign(name: str, folder: Path | None = None) -> Campaign:
    for c in load_campaigns(folder):
        if c.name == name:
            return c
    raise CampaignError(f"no campaign named {name!r} in {folder or campaigns_dir()}")


def to_dbt_vars(campaigns: list[Campaign], scope: str = "daily") -> list[dict[str, Any]]:
    """The `campaigns` dbt var (docs/INTERFACES.md): plain dicts, every setting filled in, steps 1-based, each
    step's `decided` flag for the run's scope (`decides`)."""
    out = []
    for c in campaigns:
        d = asdict(c)
        d.pop("source")
        d.pop("enabled")
        d["steps"] = [
            {**asdict(s), "channels": list(s.channels), "decided": decides(c, s.step, scope)} for s in c.steps
        ]
        out.append(d)
    return out
