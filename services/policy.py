"""Presence policy: which states exist and the timeouts that apply, from built-ins and a config file.

The edge resolves policy when an event is made and stamps the values into it (`timeout_ms`,
`visible`, `expires_at`, ...), so the processor and any replay decide with the values that were
in force then, whatever the file says later.

`PRESENCE_POLICY_FILE` (JSON) may hold:

    {"states": [{"name": "in-a-meeting", "counts_as_online": true, "expires_after_s": 3600,
                 "timeout_s": 120, "metadata_schema": {"type": "object", ...}}],
     "channels": [{"pattern": "game-*", "timeout_s": 10, "typing_timeout_s": 3}],
     "user_timeout_bounds_s": [5, 300], "idle_after_s": 300,
     "typing_timeout_s": 6, "max_typing_timeout_s": 30}
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from services.errors import ApiError


@dataclass(frozen=True)
class StateSpec:
    name: str
    counts_as_online: bool = True  # false: others see the user as offline (invisible)
    expires_after_s: float | None = None  # the state reverts to online after this long
    timeout_s: float | None = None  # presence timeout while in this state
    metadata_schema: dict[str, Any] | None = None  # JSON Schema for `status_metadata`
    description: str = ""


@dataclass(frozen=True)
class ChannelRule:
    pattern: str
    timeout_s: float | None = None
    typing_timeout_s: float | None = None


BUILT_IN_STATES = (
    StateSpec("online", description="Available."),
    StateSpec("away", description="Set by the user, or shown automatically after the idle period."),
    StateSpec("busy", description="Online but busy."),
    StateSpec("dnd", description="Do not disturb."),
    StateSpec("invisible", counts_as_online=False, description="Online, but shown to everyone else as offline."),
    StateSpec("offline", counts_as_online=False, description="Appear offline while connected (same as invisible)."),
)


@dataclass(frozen=True)
class Policy:
    states: dict[str, StateSpec] = field(default_factory=lambda: {s.name: s for s in BUILT_IN_STATES})
    channel_rules: tuple[ChannelRule, ...] = ()
    user_timeout_bounds_s: tuple[float, float] = (5.0, 300.0)
    idle_after_s: float | None = 300.0
    typing_timeout_s: float = 6.0
    max_typing_timeout_s: float = 30.0

    @classmethod
    def load(cls, path: str | None) -> Policy:
        if not path:
            return cls()
        raw = json.loads(Path(path).read_text())
        unknown = raw.keys() - {"states", "channels", "user_timeout_bounds_s", "idle_after_s", "typing_timeout_s",
                                "max_typing_timeout_s"}
        if unknown:
            raise SystemExit(f"{path}: unknown policy keys {sorted(unknown)}")
        states = {s.name: s for s in BUILT_IN_STATES}
        for spec in raw.get("states", []):
            state = StateSpec(**spec)
            if state.metadata_schema is not None:
                jsonschema.Draft202012Validator.check_schema(state.metadata_schema)
            states[state.name] = state
        bounds = raw.get("user_timeout_bounds_s", cls.user_timeout_bounds_s)
        return cls(
            states=states,
            channel_rules=tuple(ChannelRule(**rule) for rule in raw.get("channels", [])),
            user_timeout_bounds_s=(float(bounds[0]), float(bounds[1])),
            idle_after_s=raw.get("idle_after_s", cls.idle_after_s),
            typing_timeout_s=raw.get("typing_timeout_s", cls.typing_timeout_s),
            max_typing_timeout_s=raw.get("max_typing_timeout_s", cls.max_typing_timeout_s),
        )

    def state(self, name: str) -> StateSpec:
        spec = self.states.get(name)
        if spec is None:
            raise ApiError("presence.unknown_status", f"unknown status {name!r}; known: {sorted(self.states)}")
        return spec

    def check_status_metadata(self, spec: StateSpec, metadata: dict[str, Any] | None) -> None:
        if spec.metadata_schema is None:
            if metadata:
                raise ApiError("presence.invalid_status_metadata", f"status {spec.name!r} takes no metadata")
            return
        try:
            jsonschema.validate(metadata or {}, spec.metadata_schema)
        except jsonschema.ValidationError as exc:
            raise ApiError("presence.invalid_status_metadata", f"status metadata: {exc.message}") from exc

    def channel_rule(self, channel: str) -> ChannelRule | None:
        return next((r for r in self.channel_rules if fnmatch.fnmatchcase(channel, r.pattern)), None)

    def channel_timeout_ms(self, channel: str) -> int | None:
        rule = self.channel_rule(channel)
        return None if rule is None or rule.timeout_s is None else int(rule.timeout_s * 1000)

    def typing_timeout_ms(self, channel: str, requested_s: float | None) -> int:
        rule = self.channel_rule(channel)
        default = rule.typing_timeout_s if rule is not None and rule.typing_timeout_s is not None else None
        seconds = requested_s if requested_s is not None else (default or self.typing_timeout_s)
        return int(min(seconds, self.max_typing_timeout_s) * 1000)

    def user_timeout_ms(self, requested_s: float) -> int:
        low, high = self.user_timeout_bounds_s
        if not low <= requested_s <= high:
            raise ApiError("presence.timeout_out_of_bounds", f"timeout_s must be within [{low}, {high}]")
        return int(requested_s * 1000)

    @property
    def idle_after_ms(self) -> int | None:
        return None if self.idle_after_s is None else int(self.idle_after_s * 1000)
