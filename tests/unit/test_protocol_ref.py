"""The `ref` an error frame echoes for a frame that did not parse (services/protocol.py `frame_ref`)."""

from __future__ import annotations

import pytest

from services.errors import ApiError
from services.policy import Policy
from services.protocol import Limits, frame_ref, parse_frame

LIMITS = Limits(policy=Policy.load(""), max_bytes=1024, max_metadata_bytes=256)


@pytest.mark.parametrize(("text", "ref"), [
    ('{"type":"update","status":"sleeping","ref":7}', 7),
    ('{"type":"nope","ref":"a1"}', "a1"),
    ('{"ref":-3}', -3),
    ('{"type":"update","ref":true}', None),  # a bool is no ref
    ('{"type":"update","ref":1.5}', None),
    ('{"type":"update","ref":["x"]}', None),
    ('{"type":"update","ref":null}', None),
    ('{"type":"update"}', None),
    ('{"type":"update","ref":7', None),  # malformed JSON
    ('[{"ref":7}]', None),  # not an object
    ('"ref"', None),
    (None, None),  # a binary frame
])
def test_the_ref_of_a_frame_is_echoed_only_when_valid(text: str | None, ref: object) -> None:
    assert frame_ref(text, LIMITS) == ref


def test_a_frame_over_the_size_limit_is_not_parsed_for_its_ref() -> None:
    text = '{"ref":7,"pad":"' + "x" * LIMITS.max_bytes + '"}'
    assert frame_ref(text, LIMITS) is None


def test_frames_parse_frame_refuses_keep_their_ref() -> None:
    """What `frame_ref` reads is what `parse_frame` would have read: the refusal is about something else."""
    for text in ('{"type":"update","status":"sleeping","ref":7}', '{"type":"nope","ref":7}', '{"ref":7}'):
        with pytest.raises(ApiError):
            parse_frame(text, LIMITS)
        assert frame_ref(text, LIMITS) == 7
