// Ours, not upstream's: services on upstream's unmodified service package that use the
// event-consumer and jobs bindings our runtime hands out. Two parts, each its own contract,
// so one missing binding does not hide the other:
//
//   consumer  `interop-consumer@v1` consumes our Python inventory's `Items.Created` through
//             a durable eventConsumers group
//   jobs      `interop-jobs@v1` runs a job of its own queue, created once it is serving
//
//   upstream_worker.ts PART manifest   print the contract upstream's builder makes
//   upstream_worker.ts PART serve      bootstrap and serve; one JSON line per milestone
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

const [part, mode] = Deno.args;
const inventory = contractModule(
  JSON.parse(await Deno.readTextFile(Deno.env.get("INVENTORY_MANIFEST")!)),
  "",
);

const schemas = {
  IndexPayload: Type.Object({ itemId: Type.String() }),
  IndexResult: Type.Object({ itemId: Type.String(), indexedBy: Type.String() }),
} as const;

const authUse = auth.use({ rpc: { call: ["Auth.Requests.Validate"] } });
const contract = part === "consumer"
  ? defineServiceContract({ schemas }, () => ({
    id: "interop-consumer@v1",
    displayName: "Interop consumer",
    description:
      "Consumes the Python inventory's new items on upstream's runtime.",
    uses: {
      required: {
        auth: authUse,
        inventory: inventory.use({ events: { subscribe: ["Items.Created"] } }),
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
  }))
  : defineServiceContract({ schemas }, (ref) => ({
    id: "interop-jobs@v1",
    displayName: "Interop jobs",
    description: "Runs a job queue on upstream's runtime.",
    uses: { required: { auth: authUse } },
    jobs: {
      index: {
        payload: ref.schema("IndexPayload"),
        result: ref.schema("IndexResult"),
      },
    },
  }));

if (mode === "manifest") {
  say({ manifest: contract.CONTRACT, digest: contract.CONTRACT_DIGEST });
  Deno.exit(0);
}

const seed = (await Deno.readTextFile(Deno.env.get("INTEROP_SEED_FILE")!))
  .trim();
const connected = await TrellisService.connect({
  trellisUrl: Deno.env.get("TRELLIS_URL")!,
  contract,
  name: `interop-${part}`,
  sessionKeySeed: seed,
  telemetry: false,
  server: { log: undefined },
});
// deno-lint-ignore no-explicit-any
const service = connected.take() as any;
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

if (part === "consumer") {
  // the event facade groups by the event name: "Items.Created" -> event.items.created
  const listening = await service.event.items.created.listen(
    // deno-lint-ignore no-explicit-any
    (event: any) => {
      say({ milestone: "event consumed", itemId: event.id });
      return ok(undefined);
    },
    {},
    { group: "created" },
  );
  if (listening.isErr?.()) {
    say({ ready: false, error: { message: listening.error?.message } });
    Deno.exit(1);
  }
} else {
  service.jobs.index.handle(
    // deno-lint-ignore no-explicit-any
    ({ job }: { job: any }) => {
      say({ milestone: "job done", itemId: job.payload.itemId });
      return Result.ok({
        itemId: job.payload.itemId,
        indexedBy: "upstream-ts",
      });
    },
  );
}

// what a real service does: wait() starts the job workers, and ends when the service stops
void service.wait().then(
  () => say({ milestone: "service stopped" }),
  (error: unknown) => say({ milestone: "wait failed", error: String(error) }),
);
say({ ready: true });

if (part === "jobs") {
  const created = await service.jobs.index.create({ itemId: "interop-job-1" });
  if (created.isErr?.()) {
    say({ milestone: "job create failed", error: String(created.error) });
  }
}
await new Promise<void>(() => {});
