// The quick start against the real server: flow by edits and by YAML import,
// trigger, watch to completion, approve, terminate, retry.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  AbortedError,
  AlreadyExistsError,
  Code,
  ConnectError,
  createClient,
  EnvironmentStatus,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  PromoflowError,
  ReleaseStatus,
  RenderFormat,
  StepKind,
  waitRelease,
  watchRelease,
  type PromoflowClient,
  type ReleaseEvent,
} from "../src/index.js";
import { Server } from "./server.js";
import { assertContiguous, createWorld, finalStatus } from "./world.js";

async function collect(it: AsyncIterable<ReleaseEvent>): Promise<ReleaseEvent[]> {
  const out: ReleaseEvent[] = [];
  for await (const e of it) {
    out.push(e);
  }
  return out;
}

async function waitForStatus(pf: PromoflowClient, releaseId: string, status: ReleaseStatus): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { release } = await pf.releases.getRelease({ releaseId });
    if (release?.status === status) {
      return;
    }
    if (Date.now() > deadline) {
      assert.fail(`release ${releaseId} is ${ReleaseStatus[release?.status ?? 0]}, not ${ReleaseStatus[status]}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("quick start", () => {
  let server: Server;
  let pf: PromoflowClient;

  before(async () => {
    server = await Server.start();
    pf = createClient(server.baseUrl, { token: server.token });
    await createWorld(pf);
  });
  after(async () => {
    await server.dispose();
  });

  it("reads the catalog back", async () => {
    const { environments } = await pf.environments.listEnvironments({});
    assert.deepEqual(environments.map((e) => e.name), ["dev", "prod", "prod-asia", "prod-eu", "qa"]);
    const { product } = await pf.products.getProduct({ name: "demo-trioapp" });
    assert.equal(product?.applications.length, 5);
    const { flow } = await pf.flows.getFlow({ name: "parallel" });
    assert.deepEqual(flow?.steps.map((s) => s.environment), ["qa", "prod", "prod-eu", "prod-asia"]);
    const { yaml } = await pf.flows.exportFlow({ name: "parallel" });
    assert.match(yaml, /kind: PromotionFlow/);
    const { text } = await pf.flows.renderFlow({ name: "parallel", format: RenderFormat.MERMAID });
    assert.match(text, /prod-asia/);
  });

  it("raises typed errors with their code", async () => {
    await assert.rejects(
      pf.environments.createEnvironment({ environment: { name: "dev" } }),
      (e: unknown) => e instanceof AlreadyExistsError && e.code === Code.AlreadyExists,
    );
    await assert.rejects(pf.environments.getEnvironment({ name: "nope" }), (e: unknown) => {
      assert.ok(e instanceof NotFoundError);
      assert.ok(e instanceof PromoflowError);
      assert.ok(e instanceof ConnectError);
      assert.ok(!(e instanceof AlreadyExistsError));
      assert.equal(e.code, Code.NotFound);
      assert.deepEqual(e.violations, []);
      return true;
    });
    await assert.rejects(
      pf.flows.editFlow({
        name: "parallel",
        expectedVersion: 1n,
        edits: [{ edit: { case: "setSettings", value: { description: "x" } } }],
      }),
      AbortedError,
    );
  });

  it("triggers a release and watches it to SUCCEEDED", async () => {
    const { release } = await pf.releases.triggerRelease({ flow: "parallel", product: "demo-trioapp", initiator: "node" });
    assert.ok(release);
    assert.equal(release.version, "1.0.0");
    const events = await collect(watchRelease(pf, release.id));
    assert.equal(events[0]?.change.case, "snapshot");
    assertContiguous(events);
    assert.equal(finalStatus(events), ReleaseStatus.SUCCEEDED);
    const envs = new Set(events.flatMap((e) => (e.change.case === "environment" ? [e.change.value.environment?.environment] : [])));
    for (const env of ["prod", "prod-eu", "prod-asia"]) {
      assert.ok(envs.has(env), `no event of ${env}`);
    }
    const done = (await pf.releases.getRelease({ releaseId: release.id })).release;
    assert.equal(done?.status, ReleaseStatus.SUCCEEDED);
    assert.equal(done?.counters?.succeeded, 5);
    assert.equal(done?.lastSeq, events.at(-1)?.seq);

    const replay = await collect(watchRelease(pf, release.id, { afterSeq: 1 }));
    assert.equal(replay[0]?.seq, 2n);
    assertContiguous(replay);
    await assert.rejects(collect(watchRelease(pf, release.id, { afterSeq: 100_000n })), OutOfRangeError);

    const { text } = await pf.flows.renderFlow({ releaseId: release.id, format: RenderFormat.DOT });
    assert.match(text, /SUCCEEDED/);
  });

  it("waits for approval, then succeeds once approved", async () => {
    await pf.flows.editFlow({
      name: "parallel",
      expectedVersion: 2n,
      edits: [{ edit: { case: "setPolicy", value: { environment: "prod", policy: { preAction: "gate" } } } }],
    });
    const { release } = await pf.releases.triggerRelease({ flow: "parallel", product: "demo-trioapp", version: "1.1.0" });
    assert.ok(release);
    const events: ReleaseEvent[] = [];
    let approved = false;
    for await (const event of watchRelease(pf, release.id)) {
      events.push(event);
      if (!approved && event.change.case === "release" && event.change.value.status === ReleaseStatus.SUSPENDED) {
        await assert.rejects(
          pf.releases.approveEnvironment({ releaseId: release.id, environment: "qa", approve: true }),
          FailedPreconditionError,
        );
        await pf.releases.approveEnvironment({ releaseId: release.id, environment: "prod", approve: true, comment: "ship it" });
        approved = true;
      }
    }
    assert.ok(approved);
    assertContiguous(events);
    assert.equal(finalStatus(events), ReleaseStatus.SUCCEEDED);
    const done = (await pf.releases.getRelease({ releaseId: release.id })).release;
    const prod = done?.environments.find((e) => e.environment === "prod");
    assert.equal(prod?.status, EnvironmentStatus.SUCCEEDED);
    assert.equal(prod?.steps[0]?.kind, StepKind.PRE_ACTION);
    assert.match(prod?.steps[0]?.message ?? "", /ship it/);
  });

  it("terminates a long soak and retries it to success", async () => {
    await pf.flows.editFlow({
      name: "parallel",
      expectedVersion: 3n,
      edits: [
        { edit: { case: "setPolicy", value: { environment: "prod" } } },
        { edit: { case: "setPolicy", value: { environment: "prod-asia", policy: { postAction: "long-soak" } } } },
      ],
    });
    const { release } = await pf.releases.triggerRelease({ flow: "parallel", product: "demo-trioapp", version: "1.2.0" });
    assert.ok(release);
    await waitForStatus(pf, release.id, ReleaseStatus.RUNNING);
    await pf.releases.terminateRelease({ releaseId: release.id, reason: "node test" });
    const terminated = await waitRelease(pf, release.id);
    assert.equal(terminated.status, ReleaseStatus.TERMINATED);
    assert.equal(terminated.message, "node test");
    await assert.rejects(pf.releases.terminateRelease({ releaseId: release.id }), FailedPreconditionError);
    const retried = (await pf.releases.retryRelease({ releaseId: release.id })).release;
    assert.equal(retried?.status, ReleaseStatus.RUNNING);
    const events = await collect(watchRelease(pf, release.id, { afterSeq: terminated.lastSeq }));
    assert.equal(events[0]?.seq, terminated.lastSeq + 1n);
    assertContiguous(events);
    assert.equal(finalStatus(events), ReleaseStatus.SUCCEEDED);
    const { releases } = await pf.releases.listReleases({ product: "demo-trioapp" });
    assert.equal(releases.length, 3);
  });

  it("imports a flow from Codefresh YAML and runs it", async () => {
    const yaml = [
      "apiVersion: codefresh.io/v1beta1",
      "kind: PromotionFlow",
      "metadata:",
      "  name: sequential",
      "  annotations:",
      "    description: dev to qa to prod",
      "    owner: platform-team",
      "spec:",
      "  triggerEnvironment: dev",
      "  steps:",
      "    - environment: qa",
      "      dependsOn: [dev]",
      "      policy:",
      "        postAction: soak",
      "    - environment: prod",
      "      dependsOn: [qa]",
      "  promotionTimeoutLimit: 5",
      "",
    ].join("\n");
    const { flow } = await pf.flows.importFlow({ yaml });
    assert.equal(flow?.version, 1n);
    assert.equal(flow?.description, "dev to qa to prod");
    assert.deepEqual({ ...flow?.annotations }, { owner: "platform-team" });
    assert.equal(flow?.promotionTimeout?.seconds, 300n);
    await assert.rejects(pf.flows.importFlow({ yaml }), AlreadyExistsError);
    const exported = (await pf.flows.exportFlow({ name: "sequential" })).yaml;
    // Importing the export over the flow changes nothing; a changed document is version 2.
    const same = await pf.flows.importFlow({ yaml: exported, replace: true });
    assert.equal(same.unchanged, true);
    assert.equal(same.flow?.version, 1n);
    const again = (await pf.flows.importFlow({ yaml: exported.replace("owner: platform-team", "owner: sre"), replace: true })).flow;
    assert.equal(again?.version, 2n);

    const { release } = await pf.releases.triggerRelease({ flow: "sequential", product: "demo-trioapp" });
    assert.ok(release);
    const done = await waitRelease(pf, release.id);
    assert.equal(done.status, ReleaseStatus.SUCCEEDED);
    assert.deepEqual(done.environments.map((e) => e.environment), ["dev", "qa", "prod"]);

    await assert.rejects(pf.flows.importFlow({ yaml: yaml.replace("postAction", "postActon"), replace: true }), (e: unknown) => {
      assert.ok(e instanceof InvalidArgumentError);
      const v = e.violations[0];
      assert.ok(v);
      assert.ok(v.field.startsWith("yaml"), v.field);
      assert.match(v.field + v.description, /postActon/);
      return true;
    });
  });
});
