"""Upcasters: a record of an older schema version, as decoded JSON, rewritten into the current version.

The codec runs them before decoding, so the rest of the code only ever sees current records, and the
log's older records still replay. One function per version step, applied in turn (`upcast_v1_v2`,
then a `upcast_v2_v3` when there is one); golden samples of every version test them
(tests/unit/test_golden_samples.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def upcast_event_v1_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 2 added `service`; a version 1 event was never written by a service (it is None)."""
    return {**raw, "v": 2}


def upcast_batch_v1_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """A batch's events carry their own version: each is upcast when it is decoded."""
    return {**raw, "v": 2}


def upcast_user_v1_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 2 added `forced_offline_connections`; version 1 did not keep them (it is empty)."""
    return {**raw, "v": 2}


def upcast_user_snapshot_v1_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """A user snapshot's state carries its own version: it is upcast when it is decoded."""
    return {**raw, "v": 2}


EVENT_UPCASTERS: dict[int, Upcaster] = {1: upcast_event_v1_v2}
BATCH_UPCASTERS: dict[int, Upcaster] = {1: upcast_batch_v1_v2}
USER_UPCASTERS: dict[int, Upcaster] = {1: upcast_user_v1_v2}
USER_SNAPSHOT_UPCASTERS: dict[int, Upcaster] = {1: upcast_user_snapshot_v1_v2}


def upcaster(steps: dict[int, Upcaster], current: int) -> Upcaster:
    """The function that brings a raw record of any known version to `current`; others are left as
    they are (the codec then rejects their version)."""

    def upcast(raw: dict[str, Any]) -> dict[str, Any]:
        # `type(...) is int`: true == 1 in Python, and `"v": true` is no version 1.
        while type(version := raw.get("v", current)) is int and version != current and version in steps:
            raw = steps[version](raw)
        return raw

    return upcast
