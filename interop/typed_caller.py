"""A typed Python caller of upstream's TS service, through the module ``trellis contract
generate`` writes from the manifest upstream's builder made (issue 10, "Checked by").

The driver generates ``echo_sdk`` next to a copy of this file, checks both with
``mypy --strict``, registers :data:`CALLER` and runs it::

    python typed_caller.py manifest              # the caller contract's manifest (JSON)
    python typed_caller.py run URL SEED_FILE     # one JSON line: what the calls returned
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import assert_type

from echo_sdk import CONTRACT, ECHO_SAY, EchoRequest, EchoResponse, Refused  # type: ignore[import-not-found, unused-ignore]

from trellis import Contract, Err, Ok, Result, TrellisError, connect_client
from trellis.auth import SessionKey
from trellis.result import UnexpectedError

CALLER = Contract(
    "interop-typed-caller@v1",
    kind="agent",
    display_name="Interop typed caller",
    description="Calls upstream's TS service through a generated module.",
    uses={"echo": CONTRACT.use(rpc=["Echo.Say"])},
)


async def calls(url: str, seed_file: str) -> dict[str, object]:
    session = SessionKey.load(seed_file)
    async with await connect_client(CALLER, session=session, trellis_url=url) as client:
        said = await client.call(ECHO_SAY, EchoRequest(message="typed"))
        assert_type(said, Result[EchoResponse, Refused | UnexpectedError | TrellisError])
        refused = await client.call(ECHO_SAY, EchoRequest(message="forbidden"))
    out: dict[str, object] = {}
    match said:
        case Ok(reply):
            out["said"] = reply.message
        case Err(error):
            out["said_error"] = error.to_wire()
    match refused:
        case Err(Refused() as error):
            out["refused_word"] = error.word
        case Err(error):
            out["refused_error"] = error.to_wire()
        case Ok(reply):
            out["refused_ok"] = reply.message
    return out


def main() -> None:
    if sys.argv[1] == "manifest":
        print(json.dumps(CALLER.manifest))
        return
    print(json.dumps(asyncio.run(calls(sys.argv[2], sys.argv[3]))))


if __name__ == "__main__":
    main()
