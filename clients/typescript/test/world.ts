// The quick-start world, built through the client, and stream assertions.
import assert from "node:assert/strict";
import {
  EnvironmentKind,
  ReleaseStatus,
  type PromoflowClient,
  type ReleaseEvent,
} from "../src/index.js";

export const seconds = (s: number) => ({
  seconds: BigInt(Math.floor(s)),
  nanos: Math.round((s - Math.floor(s)) * 1e9),
});

export async function createWorld(pf: PromoflowClient): Promise<void> {
  for (const name of ["dev", "qa", "prod", "prod-eu", "prod-asia"]) {
    await pf.environments.createEnvironment({
      environment: {
        name,
        kind: name.startsWith("prod") ? EnvironmentKind.PRODUCTION : EnvironmentKind.NON_PRODUCTION,
      },
    });
  }
  await pf.workflows.createWorkflow({ workflow: { name: "soak", kind: { case: "wait", value: { duration: seconds(0.3) } } } });
  await pf.workflows.createWorkflow({ workflow: { name: "long-soak", kind: { case: "wait", value: { duration: seconds(2) } } } });
  await pf.workflows.createWorkflow({ workflow: { name: "gate", kind: { case: "approval", value: {} } } });
  await pf.products.createProduct({
    product: {
      name: "demo-trioapp",
      applications: [
        { environment: "dev", name: "trio-dev", version: "1.0.0" },
        { environment: "qa", name: "trio-qa" },
        { environment: "prod", name: "trio-prod" },
        { environment: "prod-eu", name: "trio-eu" },
        { environment: "prod-asia", name: "trio-asia" },
      ],
    },
  });
  const { flow } = await pf.flows.createFlow({
    flow: { name: "parallel", triggerEnvironment: "dev", steps: [{ environment: "qa", dependsOn: ["dev"] }] },
  });
  assert.equal(flow?.version, 1n);
  const edited = await pf.flows.editFlow({
    name: "parallel",
    expectedVersion: 1n,
    edits: [
      {
        edit: {
          case: "addEnvironments",
          value: { after: "qa", environments: ["prod", "prod-eu", "prod-asia"], policy: { postAction: "soak" } },
        },
      },
    ],
  });
  assert.equal(edited.flow?.version, 2n);
}

export function assertContiguous(events: ReleaseEvent[]): void {
  assert.ok(events.length > 0, "no events");
  const seqs = events.map((e) => e.seq);
  const first = seqs[0] ?? 0n;
  assert.deepEqual(seqs, seqs.map((_, i) => first + BigInt(i)), `seqs not contiguous: ${seqs.join(",")}`);
}

export function finalStatus(events: ReleaseEvent[]): ReleaseStatus {
  let status = ReleaseStatus.UNSPECIFIED;
  for (const e of events) {
    if (e.change.case === "snapshot") {
      status = e.change.value.status;
    } else if (e.change.case === "release") {
      status = e.change.value.status;
    }
  }
  return status;
}
