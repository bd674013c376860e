// Ours, not upstream's: turns a trellis.contract.v1 manifest (JSON) into the contract-module
// shape upstream's client expects from a generated SDK (`sdk.use(...)`, `API.owned`), using
// upstream's own `schema` and `defineError`.  Upstream generates these modules with a Rust
// binary we cannot fetch here; this adapter builds the same runtime values from the manifest.
import { defineError, schema } from "@qlever-llc/trellis";
import { Type } from "typebox";

type Json = Record<string, unknown>;
type Ref = { schema: string };

// the envelope fields upstream's defineError owns; the rest of an error's schema is payload
const RESERVED_ERROR_FIELDS = new Set([
  "id",
  "type",
  "message",
  "context",
  "traceId",
]);
// errors any Trellis responder may send besides the declared ones
const BUILTIN_ERRORS = ["AuthError", "ValidationError", "UnexpectedError"];
const CONTRACT_MODULE_METADATA = Symbol.for(
  "@qlever-llc/trellis/contracts/contract-module",
);

function schemaOf(manifest: Json, ref: Ref): unknown {
  const schemas = (manifest.schemas ?? {}) as Record<string, unknown>;
  const found = schemas[ref.schema];
  if (found === undefined) throw new Error(`unknown schema '${ref.schema}'`);
  return schema(found);
}

function errorClass(manifest: Json, type: string) {
  const decl = ((manifest.errors ?? {}) as Record<string, Json>)[type];
  const data = decl?.schema
    ? ((manifest.schemas as Record<string, Json>)[(decl.schema as Ref).schema])
    : { properties: {} };
  const fields: Record<string, ReturnType<typeof Type.Unsafe>> = {};
  for (
    const [name, prop] of Object.entries(
      (data.properties ?? {}) as Record<string, unknown>,
    )
  ) {
    if (!RESERVED_ERROR_FIELDS.has(name)) {
      fields[name] = Type.Unsafe(prop as Json);
    }
  }
  // deno-lint-ignore no-explicit-any
  const cls = defineError({ type, fields, message: type } as any) as any;
  return {
    type,
    schema: decl?.schema ? schemaOf(manifest, decl.schema as Ref) : undefined,
    fromSerializable: cls.fromSerializable,
  };
}

type Options = {
  // accept any input on the caller's side, so the responder's validation is what answers
  looseInputs?: boolean;
};

export function ownedApi(manifest: Json, options: Options = {}) {
  const rpc: Record<string, unknown> = {};
  for (
    const [name, raw] of Object.entries(
      (manifest.rpc ?? {}) as Record<string, Json>,
    )
  ) {
    const declared = ((raw.errors ?? []) as { type: string }[]).map((e) =>
      e.type
    );
    rpc[name] = {
      subject: raw.subject,
      input: options.looseInputs
        ? schema({})
        : schemaOf(manifest, raw.input as Ref),
      output: schemaOf(manifest, raw.output as Ref),
      callerCapabilities: (raw.capabilities as Json | undefined)?.call ?? [],
      errors: declared,
      declaredErrorTypes: [...declared, ...BUILTIN_ERRORS],
      runtimeErrors: declared.map((type) => errorClass(manifest, type)),
    };
  }
  const events: Record<string, unknown> = {};
  for (
    const [name, raw] of Object.entries(
      (manifest.events ?? {}) as Record<string, Json>,
    )
  ) {
    const caps = (raw.capabilities ?? {}) as Json;
    events[name] = {
      subject: raw.subject,
      ...(raw.params ? { params: raw.params } : {}),
      event: schemaOf(manifest, raw.event as Ref),
      publishCapabilities: caps.publish ?? [],
      subscribeCapabilities: caps.subscribe ?? [],
    };
  }
  return { rpc, operations: {}, events, feeds: {}, subjects: {} };
}

/** A module usable as `uses: { alias: module.use({...}) }` in upstream's contract builders. */
export function contractModule(
  manifest: Json,
  digest: string,
  options: Options = {},
) {
  const owned = ownedApi(manifest, options);
  const empty = {
    rpc: {},
    operations: {},
    events: {},
    feeds: {},
    subjects: {},
  };
  const module = {
    CONTRACT_ID: manifest.id as string,
    CONTRACT_DIGEST: digest,
    CONTRACT: manifest,
    API: { owned, used: empty, trellis: owned },
    use(spec: {
      rpc?: { call?: string[] };
      events?: { publish?: string[]; subscribe?: string[] };
    }) {
      const use: Json = { contract: manifest.id };
      if (spec.rpc?.call) use.rpc = { call: [...spec.rpc.call] };
      if (spec.events) use.events = { ...spec.events };
      Object.defineProperty(use, CONTRACT_MODULE_METADATA, {
        value: module,
        enumerable: false,
      });
      return use;
    },
  };
  return module;
}
