// Ours, not upstream's: a service on upstream's unmodified service package that consumes our
// Python inventory's `Items.Created` through a durable event-consumer group and indexes each
// item in a job queue: the event-consumer and jobs bindings our runtime hands out, used by
// upstream's code.
//
//   upstream_worker.ts manifest   print the contract upstream's builder makes
//   upstream_worker.ts serve      bootstrap, listen, serve; one JSON line per milestone
//
// Environment: INVENTORY_MANIFEST (our inventory manifest JSON file); for `serve` also
// TRELLIS_URL and INTEROP_SEED_FILE (the service's session seed).
import { defineServiceContract, ok } from "@qlever-llc/trellis";
import { Result } from "@qlever-llc/result";
import { sdk as auth } from "@qlever-llc/trellis/sdk/auth";
import { TrellisService } from "@qlever-llc/trellis/service/deno";
import { Type } from "typebox";
import { contractModule } from "./sdk_from_manifest.ts";

function say(line: Record<string, unknown>): void {
  console.log(JSON.stringify(line));
}

const inventoryManifest = JSON.parse(
  await Deno.readTextFile(Deno.env.get("INVENTORY_MANIFEST")!),
);
const inventory = contractModule(inventoryManifest, "");

const schemas = {
  IndexPayload: Type.Object({ itemId: Type.String(), category: Type.String() }),
  IndexResult: Type.Object({ itemId: Type.String(), indexedBy: Type.String() }),
  StatusRequest: Type.Object({}),
  StatusResponse: Type.Object({
    seen: Type.Array(Type.String()),
    indexed: Type.Array(Type.String()),
  }),
} as const;

const contract = defineServiceContract({ schemas }, (ref) => ({
  id: "interop-worker@v1",
  displayName: "Interop worker",
  description:
    "Indexes the Python inventory's new items with upstream's jobs runtime.",
  capabilities: {
    "status.read": {
      displayName: "Read status",
      description: "Read what was indexed.",
    },
  },
  uses: {
    required: {
      auth: auth.use({ rpc: { call: ["Auth.Requests.Validate"] } }),
      inventory: inventory.use({ events: { subscribe: ["Items.Created"] } }),
    },
  },
  jobs: {
    index: {
      payload: ref.schema("IndexPayload"),
      result: ref.schema("IndexResult"),
    },
  },
  eventConsumers: {
    created: {
      uses: { inventory: ["Items.Created"] },
      replay: "new",
      ordering: "strict",
      concurrency: 1,
      ackWaitMs: 30_000,
      maxDeliver: 3,
    },
  },
  rpc: {
    "Worker.Status": {
      version: "v1",
      subject: "rpc.v1.Worker.Status",
      input: ref.schema("StatusRequest"),
      output: ref.schema("StatusResponse"),
      capabilities: { call: ["status.read"] },
      errors: [ref.error("UnexpectedError")],
    },
  },
  // deno-lint-ignore no-explicit-any
})) as any;

if (Deno.args[0] === "manifest") {
  say({ manifest: contract.CONTRACT, digest: contract.CONTRACT_DIGEST });
  Deno.exit(0);
}

const seed = (await Deno.readTextFile(Deno.env.get("INTEROP_SEED_FILE")!))
  .trim();
const connected = await TrellisService.connect({
  trellisUrl: Deno.env.get("TRELLIS_URL")!,
  contract,
  name: "interop-worker",
  sessionKeySeed: seed,
  telemetry: false,
  server: { log: undefined },
});
const taken = connected.take();
// deno-lint-ignore no-explicit-any
const service = taken as any;
if (typeof service?.isErr === "function" && service.isErr()) {
  const error = service.error;
  say({
    ready: false,
    error: {
      name: error?.name,
      message: error?.message,
      cause: String(error?.cause ?? ""),
    },
  });
  Deno.exit(1);
}

const seen: string[] = [];
const indexed: string[] = [];

service.jobs.index.handle(
  // deno-lint-ignore no-explicit-any
  ({ job }: { job: any }) => {
    indexed.push(job.payload.itemId);
    say({ milestone: "job done", itemId: job.payload.itemId });
    return Result.ok({ itemId: job.payload.itemId, indexedBy: "upstream-ts" });
  },
);

// the event facade groups by the event name: "Items.Created" -> event.items.created
const created = service.event.items?.created;
if (!created) {
  say({ ready: false, error: { facade: Object.keys(service.event) } });
  Deno.exit(1);
}
const listening = await created.listen(
  // deno-lint-ignore no-explicit-any
  async (event: any) => {
    seen.push(event.id);
    say({ milestone: "event consumed", itemId: event.id });
    const job = await service.jobs.index.create({
      itemId: event.id,
      category: event.category,
    });
    if (job.isErr?.()) {
      say({ milestone: "job create failed", error: String(job.error) });
    }
    return ok(undefined);
  },
  {},
  { group: "created" },
);
if (listening.isErr?.()) {
  const error = listening.error;
  say({ ready: false, error: { name: error?.name, message: error?.message } });
  Deno.exit(1);
}

await service.handle.rpc.worker.status(() => ok({ seen, indexed }));
// what a real service does: wait() starts the job workers, and ends when the service stops
void service.wait().then(
  () => {
    say({ milestone: "service stopped" });
    Deno.exit(1);
  },
  (error: unknown) => {
    say({ milestone: "wait failed", error: String(error) });
    Deno.exit(1);
  },
);
say({ ready: true });
await new Promise<void>(() => {});
