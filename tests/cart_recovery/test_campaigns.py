"""Campaign files (contract §6, F1): the shipped ones load; invalid ones name their file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cart_recovery import CAMPAIGNS_DIR
from cart_recovery.campaigns import CampaignError, campaigns_dir, load_campaigns, to_dbt_vars

VALID = """
name: test_campaign
enabled: true
steps:
  - channels: [email]
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yml"
    path.write_text(text)
    return path


def test_shipped_campaigns_load_with_defaults_filled() -> None:
    campaigns = {c.name: c for c in load_campaigns(CAMPAIGNS_DIR)}
    assert set(campaigns) == {"bookstore_daily", "multi_touch", "omnichannel"}

    daily = campaigns["bookstore_daily"]  # the bookstore case: one email, daily, no coupon, French
    assert (daily.enabled, daily.cadence, daily.default_locale, daily.coupon_tiers) == (True, "daily", "fr", "none")
    assert [(s.step, s.channels) for s in daily.steps] == [(1, ("email",))]
    assert daily.max_items == 4
    assert daily.implied_consent_days == 730
    assert daily.attribution_window_hours == 24

    multi = campaigns["multi_touch"]
    assert (multi.enabled, multi.cadence) == (False, "hourly")
    assert [s.channels[0] for s in multi.steps] == ["push", "sms", "email"]
    assert [multi.coupon_tiers_for(s.step) for s in multi.steps] == ["none", "value_tiers", "value_tiers"]
    # push at 1 h, SMS at 4 h, email at 1 day after abandonment (delays are after the previous step)
    assert [sum(s.delay_minutes for s in multi.steps[: i + 1]) for i in range(3)] == [60, 240, 1440]

    omni = campaigns["omnichannel"]
    assert (omni.enabled, omni.cadence) == (False, "hourly")
    assert omni.steps[0].channels == ("push", "sms", "email")
    assert [s.only_if_not_engaged for s in omni.steps] == [False, True, True]
    assert omni.steps[-1].channels == ("email",)
    assert omni.steps[-1].delay_minutes == 1440


def test_to_dbt_vars_has_exactly_the_interface_keys() -> None:
    (daily,) = [c for c in load_campaigns(CAMPAIGNS_DIR) if c.name == "bookstore_daily"]
    (v,) = to_dbt_vars([daily])
    assert set(v) == {
        "name",
        "cadence",
        "audience",
        "default_locale",
        "abandon_after_minutes",
        "max_cart_age_hours",
        "frequency_cap_days",
        "holdout_percent",
        "max_items",
        "coupon_tiers",
        "implied_consent_days",
        "attribution_window_hours",
        "steps",
    }
    assert v["steps"] == [
        {
            "step": 1,
            "channels": ["email"],
            "delay_minutes": 0,
            "template": "abandoned_cart",
            "only_if_not_engaged": False,
            "coupon_tiers": None,
            "decided": True,
        }
    ]
    # the scope rules (contract §3, F1), in one place: the daily scope decides step 1 of daily campaigns
    assert [s["decided"] for s in to_dbt_vars([daily], "followups")[0]["steps"]] == [False]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (VALID + "colour: red\n", "colour: unknown key"),
        (VALID.replace("enabled: true", "enabled: yes please"), "enabled: expected true/false"),
        (VALID + "max_items: four\n", "max_items: expected an integer"),
        (VALID + "max_items: true\n", "max_items: expected an integer"),
        (VALID + "max_items: 0\n", "max_items: 0 must be >= 1"),
        (VALID + "holdout_percent: 150\n", "holdout_percent: 150 must be between 0 and 100"),
        (VALID + "cadence: weekly\n", "cadence: 'weekly' is not one of daily, hourly"),
        (VALID + "audience: everyone\n", "audience: 'everyone' is not one of all, test_group"),
        (VALID + "default_locale: de\n", "default_locale: 'de' is not one of fr, en"),
        (VALID.replace("[email]", "[fax]"), "steps[0].channels[0]: 'fax' is not one of email, sms, push"),
        (VALID.replace("[email]", "[email, email]"), "steps[0].channels: a channel is listed twice"),
        (VALID.replace("[email]", "[]"), "steps[0].channels: missing or empty"),
        (VALID + "    delay: 5\n", "steps[0].delay: unknown key"),
        (VALID + "    delay_minutes: -5\n", "steps[0].delay_minutes: -5 must be >= 0"),
        (VALID + "    template: nope\n", "steps[0].template: no email template 'nope'"),
        ("name: test_campaign\nenabled: true\n", "steps: missing or empty"),
        ("name: test_campaign\nsteps: []\n", "steps: missing or empty"),
        ("enabled: true\nsteps:\n  - channels: [email]\n", "name: missing"),
        (VALID.replace("test_campaign", "Test Campaign"), "name: 'Test Campaign' must be lower_snake_case"),
        ("- just\n- a list\n", "expected a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_invalid_campaign_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    write(tmp_path, "broken", text)
    with pytest.raises(CampaignError) as err:
        load_campaigns(tmp_path)
    assert str(err.value).startswith("broken.yml: "), err.value
    assert key in str(err.value)


def test_duplicate_names_across_files_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "a_first", VALID)
    write(tmp_path, "b_second", VALID)
    with pytest.raises(CampaignError, match=r"b_second.yml: name: 'test_campaign' is already used by a_first.yml"):
        load_campaigns(tmp_path)


def test_campaigns_dir_from_the_variable_at_run_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "only", VALID)
    monkeypatch.setenv("AIRFLOW_VAR_CART_RECOVERY_CAMPAIGNS_DIR", str(tmp_path))
    assert campaigns_dir() == tmp_path
    assert [c.name for c in load_campaigns()] == ["test_campaign"]
    monkeypatch.delenv("AIRFLOW_VAR_CART_RECOVERY_CAMPAIGNS_DIR")
    assert campaigns_dir() == CAMPAIGNS_DIR  # Variable.get's default: the project's include/campaigns/


def test_f1_scope_rules_decide_each_step_once_between_the_scopes() -> None:
    """Every step of every campaign is decided by exactly one of the daily and followups scopes; the
    backfill decides as the daily one (O3)."""
    from cart_recovery.campaigns import SCOPES, decides, in_scope

    for c in load_campaigns(CAMPAIGNS_DIR):
        for s in c.steps:
            deciders = [scope for scope in ("daily", "followups") if decides(c, s.step, scope)]
            assert len(deciders) == 1, (c.name, s.step, deciders)
            assert decides(c, s.step, "backfill") == decides(c, s.step, "daily")
        assert in_scope(c, "followups") == (c.cadence == "hourly" or len(c.steps) > 1)
    assert SCOPES == ("daily", "followups", "backfill")
