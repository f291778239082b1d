"""Golden samples: records as the code of their version wrote them, frozen in schemas/samples/.

A sample is named `{schema}[.{variant}].v{version}.json` after the JSON Schema of its records
(`change.member.joined.v1.json` is a `change.v1.json` record). Today's code must decode every sample
into its schema's record type, the schema must accept it, and encoding the decoded record must give
the same JSON. Samples are never edited: a new shape is a new version with new samples, and the old
ones must still decode (docs/events.md#versioning). A sample of an older version (event batches, user
states and user snapshots of version 1) must validate against its own, superseded schema file and decode
through the upcasters (schemas/upcasters.py) into today's records, losing nothing: only the versions and
the fields added since (at their defaults) differ when it is encoded again. Each record carries its own
family's version: a user snapshot of version 2 holds an edge lease of version 1.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas import topics
from schemas.codec import decode, encode
from tests.unit.test_json_schemas import FILES, SUPERSEDED, TOPIC_SCHEMAS, defaults, validator

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "schemas" / "samples"
SAMPLES = sorted(SAMPLE_DIR.glob("*.json"))
NAME = re.compile(r"(?P<schema>[a-z-]+)(\.[a-z_.]+)?\.v(?P<version>\d+)\.json")
# Fields added by later versions, with the value an upcast record has for them.
ADDED_SINCE_V1: dict[str, Any] = {"service": None, "forced_offline_connections": []}


def schema_of(sample: Path) -> tuple[str, int]:
    """The schema file a sample's records follow, and the sample's version."""
    match = NAME.fullmatch(sample.name)
    assert match, f"{sample.name}: not named {{schema}}[.{{variant}}].v{{version}}.json"
    return f"{match['schema']}.v{match['version']}.json", int(match["version"])


def root_of(schema: str) -> type:
    return SUPERSEDED[schema] if schema in SUPERSEDED else FILES[schema][0]


def load(sample: Path) -> Any:
    schema, _ = schema_of(sample)
    return decode(sample.read_bytes(), root_of(schema))


def current_schema(schema: str) -> str:
    """The schema file of today's version of the records `schema` describes."""
    return next(name for name, (root, _) in FILES.items() if root is root_of(schema))


def without_versions(value: Any) -> Any:
    """`value` (decoded JSON) without `v`, and without the fields added since version 1 where upcasting set them."""
    if isinstance(value, dict):
        return {k: without_versions(v) for k, v in value.items()
                if k != "v" and not (k in ADDED_SINCE_V1 and v == ADDED_SINCE_V1[k])}
    if isinstance(value, list):
        return [without_versions(v) for v in value]
    return value


def records(value: Any) -> Iterator[Any]:
    """Every record in `value`, nested ones included (a batch's events, a view's members)."""
    if dataclasses.is_dataclass(value):
        yield value
        for f in dataclasses.fields(value):
            yield from records(getattr(value, f.name))
    elif isinstance(value, tuple):
        for item in value:
            yield from records(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from records(item)


def test_there_are_samples() -> None:
    assert len(SAMPLES) >= len(set(TOPIC_SCHEMAS.values()))


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_sample_decodes_validates_and_encodes_back(sample: Path) -> None:
    schema, version = schema_of(sample)
    root = root_of(schema)
    data = sample.read_bytes()
    record = load(sample)
    assert isinstance(record, root)
    validator(schema, root).validate(orjson.loads(data))
    assert all(r.v == defaults(type(r))["v"] for r in records(record) if hasattr(r, "v"))  # upcast if older
    if schema in SUPERSEDED:  # upcast: today's version, the same facts
        assert record.v > version
        validator(current_schema(schema), root).validate(orjson.loads(encode(record)))
        assert without_versions(orjson.loads(encode(record))) == without_versions(orjson.loads(data))
        return
    assert record.v == version
    assert orjson.loads(encode(record)) == orjson.loads(data)


def test_superseded_schemas_have_samples() -> None:
    assert set(SUPERSEDED) <= {schema_of(sample)[0] for sample in SAMPLES}


def test_every_record_type_of_every_topic_has_a_sample() -> None:
    found: dict[str, set[type]] = {}
    for sample in SAMPLES:
        found.setdefault(schema_of(sample)[0], set()).update(type(r) for r in records(load(sample)))
    for spec in (*topics.ALL, *topics.TABLE_CHANGELOGS):
        assert spec.name in TOPIC_SCHEMAS, f"{spec.name}: no schema file"
        schema = TOPIC_SCHEMAS[spec.name]
        missing = {cls.__name__ for cls in FILES[schema][1]} - {cls.__name__ for cls in found.get(schema, set())}
        assert not missing, (f"{spec.name} ({schema}): no sample in schemas/samples/ holds {sorted(missing)}; "
                             "write one with schemas.codec.encode")
