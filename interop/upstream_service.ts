// Ours, not upstream's: a tiny service built with upstream's unmodified service package
// (`defineServiceContract`, `TrellisService.connect`), for a Python client to call.
//
//   upstream_service.ts manifest   print the contract upstream's builder makes
//   upstream_service.ts serve      bootstrap, mount the handlers, print {"ready": true}
//
// Environment for `serve`: TRELLIS_URL, INTEROP_SEED_FILE (the service's session seed).
import {
  defineError,
  defineServiceContract,
  err,
  ok,
} from "@qlever-llc/trellis";
import { sdk as auth } from "@qlever-llc/trellis/sdk/auth";
import { TrellisService } from "@qlever-llc/trellis/service/deno";
import { Type } from "typebox";

const schemas = {
  EchoRequest: Type.Object({ message: Type.String({ minLength: 1 }) }),
  EchoResponse: Type.Object({ message: Type.String() }),
  WhoAmIRequest: Type.Object({}),
  WhoAmIResponse: Type.Object({
    type: Type.String(),
    participantKind: Type.String(),
    id: Type.String(),
  }),
} as const;

const Refused = defineError({
  type: "Refused",
  fields: { word: Type.String() },
  message: ({ word }) => `the word '${word}' is refused`,
});

const contract = defineServiceContract(
  { schemas, errors: { Refused } },
  (ref) => ({
    id: "interop-echo@v1",
    displayName: "Interop echo",
    description:
      "A service on upstream's TypeScript runtime, called from Python.",
    capabilities: {
      "echo.call": {
        displayName: "Echo",
        description: "Call the echo service.",
      },
    },
    uses: {
      required: {
        auth: auth.use({ rpc: { call: ["Auth.Requests.Validate"] } }),
      },
    },
    resources: {
      kv: {
        said: {
          purpose: "The last message said, under the key 'last'",
          schema: ref.schema("EchoResponse"),
          required: true,
          history: 1,
          ttlMs: 0,
        },
      },
    },
    rpc: {
      "Echo.Say": {
        version: "v1",
        subject: "rpc.v1.Echo.Say",
        input: ref.schema("EchoRequest"),
        output: ref.schema("EchoResponse"),
        capabilities: { call: ["echo.call"] },
        errors: [ref.error("Refused"), ref.error("UnexpectedError")],
      },
      "Echo.Last": {
        version: "v1",
        subject: "rpc.v1.Echo.Last",
        input: ref.schema("WhoAmIRequest"),
        output: ref.schema("EchoResponse"),
        capabilities: { call: ["echo.call"] },
        errors: [ref.error("UnexpectedError")],
      },
      "Echo.WhoAmI": {
        version: "v1",
        subject: "rpc.v1.Echo.WhoAmI",
        input: ref.schema("WhoAmIRequest"),
        output: ref.schema("WhoAmIResponse"),
        capabilities: { call: ["echo.call"] },
        errors: [ref.error("UnexpectedError")],
      },
    },
  }),
);

if (Deno.args[0] === "manifest") {
  console.log(
    JSON.stringify({
      manifest: contract.CONTRACT,
      digest: contract.CONTRACT_DIGEST,
    }),
  );
  Deno.exit(0);
}

const seed = (await Deno.readTextFile(Deno.env.get("INTEROP_SEED_FILE")!))
  .trim();
const connected = await TrellisService.connect({
  trellisUrl: Deno.env.get("TRELLIS_URL")!,
  contract,
  name: "interop-echo",
  sessionKeySeed: seed,
  telemetry: false,
  server: { log: undefined },
});
const service = connected.take();
if (
  service instanceof Error || (service as { isErr?: () => boolean }).isErr?.()
) {
  const error = (service as { error?: unknown }).error ?? service;
  console.log(JSON.stringify({
    ready: false,
    error: error instanceof Error
      ? {
        name: error.name,
        message: error.message,
        cause: String(error.cause ?? ""),
      }
      : String(error),
  }));
  Deno.exit(1);
}

// deno-lint-ignore no-explicit-any
const handle = (service as any).handle;
// deno-lint-ignore no-explicit-any
await handle.rpc.echo.say(
  async ({ input, client }: { input: { message: string }; client: any }) => {
    if (input.message === "forbidden") {
      return err(new Refused({ word: input.message }));
    }
    await client.kv.said.put("last", { message: input.message }).orThrow();
    return ok({ message: input.message });
  },
);
// deno-lint-ignore no-explicit-any
await handle.rpc.echo.last(async ({ client }: { client: any }) => {
  const entry = await client.kv.said.get("last").orThrow();
  return ok({ message: entry.value.message });
});
// deno-lint-ignore no-explicit-any
await handle.rpc.echo.whoAmI(({ context }: { context: { caller: any } }) => {
  const caller = context.caller;
  console.error(JSON.stringify({ caller }));
  return ok({
    type: String(caller.type),
    participantKind: String(caller.participantKind ?? ""),
    id: String(caller.userId ?? caller.id ?? ""),
  });
});
console.log(JSON.stringify({ ready: true }));
await new Promise<void>(() => {});
