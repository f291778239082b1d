"""Policy from the built-ins and a config file: states, channel rules, bounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.errors import ApiError
from services.policy import Policy

POLICY = {
    "states": [{"name": "gaming", "counts_as_online": True, "expires_after_s": 60, "timeout_s": 90,
                "metadata_schema": {"type": "object", "properties": {"game": {"type": "string"}},
                                    "required": ["game"]}}],
    "channels": [{"pattern": "game-*", "timeout_s": 10, "typing_timeout_s": 3}],
    "user_timeout_bounds_s": [5, 120],
    "typing_timeout_s": 6,
    "max_typing_timeout_s": 30,
}


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(POLICY))
    return Policy.load(str(path))


def test_built_in_and_configured_states(policy: Policy) -> None:
    assert {"online", "away", "busy", "dnd", "invisible", "offline", "gaming"} <= policy.states.keys()
    assert policy.state("invisible").counts_as_online is False
    with pytest.raises(ApiError) as unknown:
        policy.state("napping")
    assert unknown.value.error.code == "presence.unknown_status"


def test_state_metadata_is_checked_against_its_schema(policy: Policy) -> None:
    gaming = policy.state("gaming")
    policy.check_status_metadata(gaming, {"game": "chess"})
    for bad in ({}, {"game": 7}, None):
        with pytest.raises(ApiError) as invalid:
            policy.check_status_metadata(gaming, bad)
        assert invalid.value.error.code == "presence.invalid_status_metadata"
    with pytest.raises(ApiError):
        policy.check_status_metadata(policy.state("away"), {"x": 1})


def test_channel_rules_and_timeouts(policy: Policy) -> None:
    assert policy.channel_timeout_ms("game-42") == 10_000
    assert policy.channel_timeout_ms("lobby") is None
    assert policy.typing_timeout_ms("game-42", None) == 3_000
    assert policy.typing_timeout_ms("lobby", None) == 6_000
    assert policy.typing_timeout_ms("lobby", 120) == 30_000  # capped
    assert policy.user_timeout_ms(60) == 60_000
    with pytest.raises(ApiError) as bounds:
        policy.user_timeout_ms(1)
    assert bounds.value.error.code == "presence.timeout_out_of_bounds"


def test_unknown_policy_keys_and_bad_schemas_stop_the_edge(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"stats": []}))
    with pytest.raises(SystemExit):
        Policy.load(str(path))
    path.write_text(json.dumps({"states": [{"name": "x", "metadata_schema": {"type": "nonsense"}}]}))
    with pytest.raises(Exception, match="nonsense"):
        Policy.load(str(path))
