"""A KV write over a declared limit is a typed ``KVError`` (issue 11 item 8), not the
``UnexpectedError`` a raised NATS error became: on the service side from ``put``,
``create`` and ``update``, and for a caller when the handler passes it on.  A refused write
stores nothing: the key keeps its previous value."""

from __future__ import annotations

import pytest
from nats.js.api import KeyValueConfig
from pydantic import BaseModel

from trellis import Contract, kv, rpc
from trellis.result import Err, KVError, Ok, Result
from trellis.service import KvHandle, RequestContext
from trellis.testing import LocalDeployment


class Note(BaseModel):
    text: str


class SaveNote(BaseModel):
    id: str
    text: str


#: at most 64 bytes per stored value
NOTES = kv(Note, purpose="Short notes", max_value_bytes=64)
SAVE = rpc(SaveNote, Note, errors=[KVError], call=["write"])
notes = Contract(
    "notes@v1",
    kind="service",
    display_name="Notes",
    description="Keeps short notes.",
    capabilities={"write": "Write notes"},
    rpc={"Notes.Save": SAVE},
    kv={"notes": NOTES},
)
notes_cli = Contract(
    "notes-cli@v1",
    kind="agent",
    display_name="Notes CLI",
    description="Writes notes.",
    uses={"notes": notes.use(rpc=["Notes.Save"])},
)


async def test_an_oversized_kv_write_is_a_typed_kv_error_and_stores_nothing(
    trellis_deployment: LocalDeployment,
) -> None:
    dep = trellis_deployment
    service = await dep.connect_service(notes, await dep.install(notes))
    store = service.kv[NOTES]

    @service.rpc(SAVE)
    async def save(req: SaveNote, ctx: RequestContext) -> Result[Note, KVError]:
        note = Note(text=req.text)
        created = await store.create(req.id, note)
        return Ok(note) if isinstance(created, Ok) else Err(created.error)

    await service.start()
    revision = await store.put("kept", Note(text="short"))
    big = Note(text="x" * 100)  # over maxValueBytes

    with pytest.raises(KVError) as put_refused:
        await store.put("kept", big)
    assert put_refused.value.reason == "value_too_large"
    assert put_refused.value.key == "kept"

    updated = await store.update("kept", big, revision)
    assert isinstance(updated, Err) and updated.error.reason == "value_too_large"
    created = await store.create("new", big)
    assert isinstance(created, Err) and created.error.reason == "value_too_large"

    # a value of exactly maxValueBytes fits, also with create's and update's headers
    exact = Note(text="x" * (64 - len('{"text":""}')))
    assert len(exact.model_dump_json()) == 64
    fits = await store.create("exact", exact)
    assert isinstance(fits, Ok)
    assert isinstance(await store.update("exact", exact, fits.value), Ok)
    await store.delete("exact")

    # NATS's own refusal (the bucket's limit, for a handle that does not check it first)
    # becomes the same typed error
    unchecked = KvHandle("notes", store._kv, Note)
    with pytest.raises(KVError) as nats_refused:
        await unchecked.put("kept", Note(text="x" * 400))
    assert nats_refused.value.reason == "value_too_large"

    # over the connection's maximum payload (1 MB): refused before it reaches the bucket
    huge = Note(text="x" * (service.nc.max_payload + 1))
    with pytest.raises(KVError) as payload_refused:
        await store.put("kept", huge)
    assert payload_refused.value.reason == "value_too_large"

    # nothing was written or half-written
    entry = await store.get("kept")
    assert entry is not None and entry.value == Note(text="short")
    assert entry.revision == revision
    assert await store.keys() == ["kept"]

    # a caller sees the typed error its contract declares, not UnexpectedError
    me = await dep.user("writer", notes_cli, ["notes::write"])
    client = await dep.connect_client(notes_cli, me)
    answer = await client.call("Notes.Save", {"id": "n1", "text": "x" * 100})
    assert isinstance(answer, Err)
    assert answer.error.type == "KVError"
    assert answer.error.reason == "value_too_large"
    ok = await client.call("Notes.Save", {"id": "n1", "text": "fits"})
    assert isinstance(ok, Ok)
    assert sorted(await store.keys()) == ["kept", "n1"]


async def test_a_write_to_a_full_bucket_is_a_typed_kv_error(
    trellis_deployment: LocalDeployment,
) -> None:
    """Byte limits of a bucket (here one made outside Trellis, as an operator might) refuse
    a write as ``bucket_full``; the earlier values stay."""
    js = (await trellis_deployment.raw_runtime()).jetstream()
    bucket = await js.create_key_value(KeyValueConfig(bucket="tiny", max_bytes=300))
    store = KvHandle("tiny", bucket, Note)
    written = 0
    with pytest.raises(KVError) as full:
        for i in range(20):
            await store.put(f"k{i}", Note(text="x" * 40))
            written += 1
    assert full.value.reason == "bucket_full"
    assert 0 < written < 20
    assert len(await store.keys()) == written
