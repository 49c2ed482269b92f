// watchRelease survives a server restart mid-release: it reconnects, resumes
// from the last seq and ends at SUCCEEDED with contiguous seqs.
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import {
  createClient,
  ReleaseStatus,
  StepKind,
  StepStatus,
  UnavailableError,
  watchRelease,
  type PromoflowClient,
  type ReleaseEvent,
  type StepRun,
} from "../src/index.js";
import { Server } from "./server.js";
import { assertContiguous, finalStatus, seconds } from "./world.js";

async function slowWorld(pf: PromoflowClient): Promise<string> {
  for (const name of ["dev", "qa", "prod"]) {
    await pf.environments.createEnvironment({ environment: { name } });
  }
  await pf.workflows.createWorkflow({ workflow: { name: "soak", kind: { case: "wait", value: { duration: seconds(4) } } } });
  await pf.products.createProduct({
    product: {
      name: "app",
      applications: [
        { environment: "dev", name: "app-dev", version: "1.0.0" },
        { environment: "qa", name: "app-qa" },
        { environment: "prod", name: "app-prod" },
      ],
    },
  });
  await pf.flows.createFlow({
    flow: {
      name: "slow",
      triggerEnvironment: "dev",
      steps: [
        { environment: "qa", dependsOn: ["dev"], policy: { postAction: "soak" } },
        { environment: "prod", dependsOn: ["qa"] },
      ],
    },
  });
  const { release } = await pf.releases.triggerRelease({ flow: "slow", product: "app" });
  assert.ok(release);
  return release.id;
}

// Whether the event shows qa's soak (post-action) running: as a step change,
// or inside a snapshot / environment change when the watch started late.
function soakRunning(event: ReleaseEvent): boolean {
  const running = (steps: readonly StepRun[] | undefined) =>
    (steps ?? []).some((s) => s.kind === StepKind.POST_ACTION && s.status === StepStatus.RUNNING);
  switch (event.change.case) {
    case "step":
      return event.change.value.environment === "qa" && running(event.change.value.step ? [event.change.value.step] : []);
    case "environment":
      return event.change.value.environment?.environment === "qa" && running(event.change.value.environment.steps);
    case "snapshot":
      return running(event.change.value.environments.find((e) => e.environment === "qa")?.steps);
    default:
      return false;
  }
}

describe("watch resume", () => {
  let server: Server | undefined;
  afterEach(async () => {
    await server?.dispose();
    server = undefined;
  });

  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    it(`resumes across a server restart (${signal})`, async () => {
      server = await Server.start();
      const pf = createClient(server.baseUrl, { token: server.token });
      const releaseId = await slowWorld(pf);
      const events: ReleaseEvent[] = [];
      let restarted = false;
      for await (const event of watchRelease(pf, releaseId, { reconnectTimeoutMs: 30_000 })) {
        events.push(event);
        if (!restarted && soakRunning(event)) {
          await server.restart(signal);
          restarted = true;
        }
      }
      assert.ok(restarted, "the soak step never started");
      assert.equal(events[0]?.change.case, "snapshot");
      assertContiguous(events);
      assert.equal(finalStatus(events), ReleaseStatus.SUCCEEDED);
      const { release } = await pf.releases.getRelease({ releaseId });
      assert.equal(release?.status, ReleaseStatus.SUCCEEDED);
      assert.equal(release?.lastSeq, events.at(-1)?.seq);
    });
  }

  it("gives up with UnavailableError when the server stays down", async () => {
    server = await Server.start();
    const pf = createClient(server.baseUrl, { token: server.token });
    const releaseId = await slowWorld(pf);
    await assert.rejects(async () => {
      for await (const event of watchRelease(pf, releaseId, { reconnectTimeoutMs: 1000 })) {
        if (soakRunning(event)) {
          await server?.stop();
        }
      }
    }, UnavailableError);
  });
});
