// Ours, not upstream's: drives a Python Trellis deployment with upstream's unmodified
// TypeScript client (`TrellisClient.connect`, `request`, `listenEvent`).  The Python driver
// (interop/driver.py) runs it; every step prints one JSON line on stdout.
//
//   upstream_client.ts manifest   print the agent contract upstream's builder makes
//   upstream_client.ts run        connect and exercise the inventory service
//
// Environment: INVENTORY_MANIFEST (our inventory manifest JSON file), TRELLIS_URL and
// INTEROP_SEED_FILE (the agent's session seed, base64url) for `run`.
import { defineAgentContract, TrellisClient } from "@qlever-llc/trellis";
import { isErr } from "@qlever-llc/result";
import { contractModule } from "./sdk_from_manifest.ts";

type Json = Record<string, unknown>;

function emit(step: string, ok: boolean, detail: unknown = null): void {
  console.log(JSON.stringify({ step, ok, detail }));
}

function describe(error: unknown): Json {
  if (!(error instanceof Error)) return { value: String(error) };
  const e = error as Error & {
    toSerializable?: () => unknown;
    reason?: string;
    code?: string;
  };
  return {
    class: e.constructor?.name,
    name: e.name,
    message: e.message,
    reason: e.reason ?? null,
    code: e.code ?? null,
    serializable: typeof e.toSerializable === "function"
      ? e.toSerializable()
      : null,
    cause: e.cause instanceof Error ? describe(e.cause) : (e.cause ?? null),
  };
}

const manifestPath = Deno.env.get("INVENTORY_MANIFEST");
if (!manifestPath) throw new Error("INVENTORY_MANIFEST is not set");
const inventoryManifest = JSON.parse(
  await Deno.readTextFile(manifestPath),
) as Json;
const inventory = contractModule(inventoryManifest, "", { looseInputs: true });

const agent = defineAgentContract(() => ({
  id: "interop-agent@v1",
  displayName: "Interop agent",
  description: "Upstream's client calling the Python inventory service.",
  uses: {
    required: {
      inventory: inventory.use({
        rpc: { call: ["Items.Get", "Items.Create"] },
        events: { subscribe: ["Items.Created"] },
      }),
    },
  },
  // deno-lint-ignore no-explicit-any
})) as any;

if (Deno.args[0] === "manifest") {
  console.log(
    JSON.stringify({ manifest: agent.CONTRACT, digest: agent.CONTRACT_DIGEST }),
  );
  Deno.exit(0);
}

const stdin = Deno.stdin.readable.pipeThrough(new TextDecoderStream())
  .getReader();
async function waitForDriver(step: string): Promise<void> {
  emit(step, true, "waiting for the driver");
  let buffered = "";
  while (!buffered.includes("\n")) {
    const { value, done } = await stdin.read();
    if (done) throw new Error("driver closed stdin");
    buffered += value;
  }
}

const seed = (await Deno.readTextFile(Deno.env.get("INTEROP_SEED_FILE")!))
  .trim();
const connected = await TrellisClient.connect({
  trellisUrl: Deno.env.get("TRELLIS_URL")!,
  contract: agent,
  auth: {
    mode: "session_key",
    sessionKeySeed: seed,
    redirectTo: "http://127.0.0.1/done",
  },
  timeout: 5000,
});
const client = connected.take();
if (isErr(client)) {
  emit("connect", false, describe(client.error));
  Deno.exit(1);
}
emit("connect", true);

const category = `books${Date.now()}`;
const events: unknown[] = [];
let eventSeen: () => void = () => {};
const eventArrived = new Promise<void>((resolve) => (eventSeen = resolve));
const listening = await client.listenEvent(
  "Items.Created",
  { category },
  (event: unknown) => {
    events.push(event);
    eventSeen();
  },
  { mode: "ephemeral" },
);
emit(
  "listen",
  !isErr(listening),
  isErr(listening) ? describe(listening.error) : null,
);

const id = `dune-${Date.now()}`;
const created = await client.request("Items.Create", {
  id,
  name: "Dune",
  category,
  quantity: 3,
});
// deno-lint-ignore no-explicit-any
const createdOk = !isErr(created) && (created.take() as any).id === id;
emit(
  "rpc Items.Create",
  createdOk,
  isErr(created) ? describe(created.error) : created.take(),
);

const got = await client.request("Items.Get", { id });
// deno-lint-ignore no-explicit-any
emit(
  "rpc Items.Get",
  !isErr(got) && (got.take() as any).quantity === 3,
  isErr(got) ? describe(got.error) : got.take(),
);

const missing = await client.request("Items.Get", { id: "no-such-item" });
emit(
  "declared error",
  isErr(missing) && missing.error.name === "ItemNotFound" &&
    // deno-lint-ignore no-explicit-any
    (missing.error as any).item_id === "no-such-item",
  isErr(missing) ? describe(missing.error) : missing.take(),
);

// the adapter loosens input schemas (looseInputs), so this reaches the service and
// it is the service's ValidationError that upstream's code decodes
const badInput = await client.request("Items.Create", {
  id: "bad id with spaces",
  name: "",
  category: "Not-Lower",
});
// deno-lint-ignore no-explicit-any
const issues = isErr(badInput)
  ? (badInput.error as any).toSerializable?.().issues ?? []
  : [];
emit(
  "validation error",
  isErr(badInput) && badInput.error.name === "ValidationError" &&
    // deno-lint-ignore no-explicit-any
    issues.map((issue: any) => issue.path).sort().join(",") ===
      "/category,/id,/name",
  isErr(badInput) ? describe(badInput.error) : badInput.take(),
);

await Promise.race([
  eventArrived,
  new Promise((resolve) => setTimeout(resolve, 5000)),
]);
// deno-lint-ignore no-explicit-any
const first = events[0] as any;
emit(
  "event Items.Created",
  first?.id === id && first?.category === category,
  first ?? null,
);

// a request with no proof headers, straight on the client's NATS connection: upstream's
// own services answer AuthError missing_session_key; this records what ours do
// deno-lint-ignore no-explicit-any
const nc = (client as any).nats;
try {
  const reply = await nc.request(
    "rpc.v1.Items.Get",
    new TextEncoder().encode(JSON.stringify({ id })),
    { timeout: 2000 },
  );
  const body = new TextDecoder().decode(reply.data);
  emit("missing proof", reply.headers?.get("status") === "error", {
    status: reply.headers?.get("status") ?? null,
    body: JSON.parse(body),
  });
} catch (error) {
  emit("missing proof", false, describe(error));
}

await waitForDriver("await revoke");
const denied = await client.request("Items.Create", {
  id: `${id}-2`,
  name: "Dune Messiah",
  category,
  quantity: 1,
});
emit(
  "insufficient permissions",
  isErr(denied) && denied.error.name === "AuthError" &&
    // deno-lint-ignore no-explicit-any
    (denied.error as any).reason === "insufficient_permissions",
  isErr(denied) ? describe(denied.error) : denied.take(),
);

Deno.exit(0);
