// Authors tests/codegen/data/field-notes.upstream.json with upstream's TypeScript contract
// builder (defineServiceContract + TypeBox), to check that `trellis contract generate`
// reads manifests upstream's tooling writes (an operation and transfers included).  Run
// with Deno and an import map giving "@qlever-llc/trellis/contracts" (upstream's
// js/packages/trellis/contracts.ts) and "typebox" (npm:typebox@^1):
//   deno run -A field-notes.contract.ts > field-notes.upstream.json
import { defineServiceContract } from "@qlever-llc/trellis/contracts";
import Type from "typebox";

const schemas = {
  NoteId: Type.Object({ id: Type.String({ minLength: 1 }) }),
  Note: Type.Object({
    id: Type.String({ minLength: 1 }),
    title: Type.String({ minLength: 1, maxLength: 120 }),
    body: Type.Optional(Type.String()),
    kind: Type.Union([Type.Literal("observation"), Type.Literal("task")]),
    priority: Type.Integer({ minimum: 0, maximum: 5 }),
    tags: Type.Array(Type.String(), { maxItems: 8 }),
    location: Type.Optional(Type.Object({ lat: Type.Number(), lon: Type.Number() })),
    meta: Type.Record(Type.String(), Type.String()),
    author: Type.Union([
      Type.Object({ type: Type.Literal("user"), userId: Type.String() }),
      Type.Object({ type: Type.Literal("device"), deviceId: Type.String() }),
    ]),
    createdAt: Type.String({ format: "date-time" }),
    extra: Type.Optional(Type.Intersect([
      Type.Object({ a: Type.String() }),
      Type.Object({ b: Type.String() }),
    ])),
  }),
  NoteList: Type.Object({ notes: Type.Array(Type.Object({ id: Type.String(), title: Type.String() })) }),
  ListNotes: Type.Object({ kind: Type.Optional(Type.Union([Type.Literal("observation"), Type.Literal("task")])) }),
  NoteAdded: Type.Object({ id: Type.String(), kind: Type.Union([Type.Literal("observation"), Type.Literal("task")]) }),
  PhotoRequest: Type.Object({ noteId: Type.String(), key: Type.String() }),
  PhotoProgress: Type.Object({ bytes: Type.Integer({ minimum: 0 }) }),
  PhotoDone: Type.Object({ key: Type.String(), size: Type.Integer() }),
  NoteNotFoundData: Type.Object({
    id: Type.String(),
    type: Type.Literal("NoteNotFound"),
    message: Type.String(),
    noteId: Type.String(),
  }),
};

const contract = defineServiceContract({ schemas }, (ref) => ({
  id: "field-notes@v1",
  displayName: "Field Notes",
  description: "Notes taken in the field.",
  capabilities: {
    "notes.read": { displayName: "Read notes", description: "Read field notes." },
    "notes.write": { displayName: "Write notes", description: "Add field notes." },
  },
  errors: {
    NoteNotFound: { type: "NoteNotFound", schema: ref.schema("NoteNotFoundData") },
  },
  rpc: {
    "Notes.Get": {
      version: "v1",
      input: ref.schema("NoteId"),
      output: ref.schema("Note"),
      capabilities: { call: ["notes.read"] },
      errors: [ref.error("NoteNotFound"), ref.error("UnexpectedError")],
    },
    "Notes.Add": {
      version: "v1",
      input: ref.schema("Note"),
      output: ref.schema("NoteId"),
      capabilities: { call: ["notes.write"] },
    },
    "Notes.List": {
      version: "v1",
      input: ref.schema("ListNotes"),
      output: ref.schema("NoteList"),
    },
    "Photos.Download": {
      version: "v1",
      input: ref.schema("PhotoRequest"),
      output: ref.schema("PhotoDone"),
      transfer: { direction: "receive" },
      capabilities: { call: ["notes.read"] },
      errors: [ref.error("TransferError")],
    },
  },
  operations: {
    "Photos.Upload": {
      version: "v1",
      input: ref.schema("PhotoRequest"),
      progress: ref.schema("PhotoProgress"),
      output: ref.schema("PhotoDone"),
      transfer: { direction: "send", store: "photos", key: "/key", expiresInMs: 60000 },
      capabilities: { call: ["notes.write"], observe: ["notes.write"] },
    },
  },
  events: {
    "Notes.Added": {
      version: "v1",
      params: ["/kind"],
      event: ref.schema("NoteAdded"),
      capabilities: { subscribe: ["notes.read"] },
    },
  },
  resources: {
    kv: { notes: { purpose: "Notes by id.", schema: ref.schema("Note") } },
    store: { photos: { purpose: "Photos of notes.", maxObjectBytes: 1048576 } },
  },
}));

// the digest upstream computes travels beside the manifest, for our digest to match
console.log(JSON.stringify({ digest: contract.CONTRACT_DIGEST, manifest: contract.CONTRACT }, null, 2));
