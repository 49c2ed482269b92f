// Tokens decide what a client may do: none is refused, a viewer reads but
// does not write, and a revoked token stops working at once.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, createClient, PromoflowError, Role } from "../src/index.js";
import { Server } from "./server.js";

describe("tokens", () => {
  let server: Server;

  before(async () => {
    server = await Server.start();
  });
  after(async () => {
    await server.dispose();
  });

  it("refuses no token, limits a viewer and honours revocation", async () => {
    const code = (want: Code) => (e: unknown) => {
      assert.ok(e instanceof PromoflowError, String(e));
      assert.equal(e.code, want);
      return true;
    };
    const anonymous = createClient(server.baseUrl, { token: "" });
    await assert.rejects(anonymous.environments.listEnvironments({}), code(Code.Unauthenticated));
    const admin = createClient(server.baseUrl, { token: server.token });
    const made = await admin.tokens.createToken({ name: "viewer", role: Role.VIEWER });
    assert.match(made.secret, /^pf_/);
    const viewer = createClient(server.baseUrl, { token: made.secret });
    const listed = await viewer.environments.listEnvironments({});
    assert.deepEqual(listed.environments, []);
    await assert.rejects(viewer.environments.createEnvironment({ environment: { name: "dev" } }), (e: unknown) => {
      code(Code.PermissionDenied)(e);
      assert.match((e as PromoflowError).rawMessage, /environments\.write/);
      return true;
    });
    await admin.tokens.revokeToken({ name: "viewer" });
    await assert.rejects(viewer.environments.listEnvironments({}), code(Code.Unauthenticated));
  });
});
