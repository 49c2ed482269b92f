// INVALID_ARGUMENT errors carry every field violation, decoded from the
// google.rpc.BadRequest detail of the grpc-status-details-bin trailer.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  BadRequestSchema,
  Code,
  createClient,
  InvalidArgumentError,
  type PromoflowClient,
} from "../src/index.js";
import { Server } from "./server.js";
import { createWorld } from "./world.js";

describe("validation errors", () => {
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

  it("decodes the field violation of a bad environment name", async () => {
    await assert.rejects(pf.environments.createEnvironment({ environment: { name: "Bad_Name" } }), (e: unknown) => {
      assert.ok(e instanceof InvalidArgumentError);
      assert.equal(e.code, Code.InvalidArgument);
      assert.deepEqual(e.violationFields, ["environment.name"]);
      assert.ok(e.violations[0]?.description);
      // The raw detail is there too, through Connect's own API.
      assert.equal(e.findDetails(BadRequestSchema)[0]?.fieldViolations[0]?.field, "environment.name");
      return true;
    });
  });

  it("reports every problem of a flow at once", async () => {
    await assert.rejects(
      pf.flows.createFlow({
        flow: {
          name: "Broken_Flow",
          triggerEnvironment: "dev",
          steps: [
            { environment: "qa", dependsOn: ["qa"] },
            { environment: "nowhere", dependsOn: ["dev"] },
            { environment: "prod", dependsOn: ["qa"], policy: { postAction: "no-such-workflow" } },
          ],
        },
      }),
      (e: unknown) => {
        assert.ok(e instanceof InvalidArgumentError);
        for (const field of [
          "flow.name",
          "flow.steps[0].depends_on[0]",
          "flow.steps[1].environment",
          "flow.steps[2].policy.post_action",
        ]) {
          assert.ok(e.violationFields.includes(field), `${field} not in ${e.violationFields.join(", ")}`);
        }
        assert.ok(e.violations.every((v) => v.description.length > 0));
        return true;
      },
    );
  });

  it("names the failing edit of EditFlow", async () => {
    await assert.rejects(
      pf.flows.editFlow({
        name: "parallel",
        expectedVersion: 2n,
        edits: [{ edit: { case: "setPolicy", value: { environment: "nowhere" } } }],
      }),
      (e: unknown) => e instanceof InvalidArgumentError && e.violationFields.some((f) => f.startsWith("edits[0]")),
    );
  });

  it("ValidateFlow returns violations in the response", async () => {
    const res = await pf.flows.validateFlow({
      flow: { name: "Broken_Flow", triggerEnvironment: "dev", steps: [{ environment: "qa", dependsOn: ["qa"] }] },
    });
    const fields = res.violations.map((v) => v.field);
    assert.ok(fields.includes("name") && fields.includes("steps[0].depends_on[0]"), fields.join(", "));
  });
});
