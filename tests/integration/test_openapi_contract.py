"""The served OpenAPI document against the live edge (issue #5): schemathesis, every operation, every check.

Schemathesis runs as it would by hand (`schemathesis run <edge>/openapi.json --checks all`), in its
four phases: the document's examples; coverage (boundary values, missing and wrong parameters,
undeclared methods); fuzzing; stateful sequences along the links it infers. Generation is
deterministic, so CI sends the same requests on every run.

(The pytest plugin's `schemathesis.pytest.from_fixture`, the way to take a URL known only once the
stack runs, does not work with pytest 9.2: it sets `Function._nodeid`, which pytest no longer has.)
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

import httpx

from tests.integration.stack import Stack, eventually

MAX_EXAMPLES = 50  # per operation and phase: 20-40 s on a busy 2-core machine
MAX_RESPONSE_S = 10  # twice the longest wait the edge makes on purpose (`wait=true`, PRESENCE_WRITE_TIMEOUT_S)

# What the OpenAPI document cannot say, told to the checks instead (nothing is switched off).
CONFIG = """
# GET /realtime/ws is the WebSocket handshake. OpenAPI cannot describe an upgrade, so every
# schema-valid request there is plain HTTP, which the edge answers 426 (with `Upgrade: websocket`);
# a handshake succeeds with 101. The check counts only 2xx and 3xx as acceptance by default.
[[operations]]
include-path = "/realtime/ws"
checks.positive_data_acceptance.expected-statuses = ["101", "426"]

# A timeline's window is refused (400 request.invalid) when `from` is not before `to` or more than 31
# days before it: a relation between two parameters, which OpenAPI cannot state (each is valid alone).
[[operations]]
include-path = "/realtime/users/{user_id}/presence/timeline"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

# A channel read `at` an instant is refused (400 request.invalid) before 1970 or after 9999: the
# range of epoch milliseconds, which a `date-time` string cannot state.
[[operations]]
include-path = "/realtime/channels/{channel}/presence"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

# The default list, plus 413: a body over PRESENCE_MAX_BODY_BYTES is refused before it is parsed.
# JSON Schema has no keyword for a size in bytes, so an oversized invalid body is still a rejection.
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

[generation]
database = "none"
"""


def _credentials(stack: Stack) -> str:
    """Credentials by the document's security schemes: a user's token, and for the service acts (whose
    only scheme is `serviceKey`) a service key."""
    user_token = stack.token(f"contract-{uuid.uuid4().hex[:6]}")
    return f"""
[auth.openapi.bearer]
bearer = "{user_token}"

[auth.openapi.token]
api_key = "{user_token}"

[auth.openapi.serviceKey]
bearer = "{stack.service_key()}"
"""


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


async def test_the_served_document_holds_for_every_operation_under_every_check(stack: Stack, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        await eventually(lambda: _ready(http), timeout_s=60)  # an earlier test may have restarted the edge
        document = (await http.get("/openapi.json")).json()
    operations = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}
    (tmp_path / "schemathesis.toml").write_text(_credentials(stack) + CONFIG)
    report = tmp_path / "report.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "--config-file", "schemathesis.toml",
        "run", f"{stack.base_url}/openapi.json",
        "--checks", "all", "--max-response-time", str(MAX_RESPONSE_S),
        "--include-path-regex", "^/",  # every operation: GET /openapi.json is left out unless selected
        "--max-examples", str(MAX_EXAMPLES), "--generation-deterministic", "--workers", "1",
        "--report", "json", "--report-json-path", str(report),
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output = (await process.communicate())[0].decode()
    assert process.returncode == 0, output
    summary = json.loads(report.read_text())
    assert (summary["failures"], summary["errors"]) == ([], []), output
    assert summary["operations"]["tested"] == summary["operations"]["total"] == len(operations), output
    assert set(summary["valid_rates"]) == operations, output  # each one had requests sent and checked
    assert {phase: result["status"] for phase, result in summary["phases"].items()} == {
        "examples": "success", "coverage": "success", "fuzzing": "success", "stateful": "success",
    }, output


async def test_what_the_fuzzer_found_stays_fixed(stack: Stack) -> None:
    user_id = f"contract-{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": f"Bearer {stack.token(user_id)}"}
    async with httpx.AsyncClient(base_url=stack.base_url, headers=headers, timeout=15) as http:
        # A repeated Idempotency-Key with wait=true, after another update: answered with the presence now.
        url, again = "/realtime/presence/update?wait=true", {"Idempotency-Key": "k1"}
        first = await http.post(url, json={"status": "busy"}, headers=again)
        await http.post(url, json={"status": "dnd"})
        repeated = await http.post(url, json={"status": "busy"}, headers=again)
        assert (first.status_code, repeated.status_code) == (200, 200), repeated.text
        assert repeated.json()["event_id"] == first.json()["event_id"]
        assert repeated.json()["presence"]["user_id"] == user_id
        # A bad parameter is an error also when count_only=true makes it moot.
        moot = await http.get("/realtime/channels/lobby/presence", params={"count_only": "true", "limit": "x"})
        # null is not a value of any update field.
        null = await http.post("/realtime/presence/update", json={"timeout_s": None})
    assert (moot.status_code, moot.json()["error"]["code"]) == (400, "request.invalid")
    assert (null.status_code, null.json()["error"]["code"]) == (400, "request.invalid")
