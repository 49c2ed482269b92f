// TLS and mutual TLS: a server started with --tls-cert, --tls-key and
// --tls-client-ca, reached over https:// with the test CA and a client certificate.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, createClient, PromoflowError } from "../src/index.js";
import { Server } from "./server.js";

describe("tls", () => {
  let server: Server;

  before(async () => {
    server = await Server.startMutualTls();
  });
  after(async () => {
    await server.dispose();
  });

  it("reaches every call over mutual TLS with a token", async () => {
    const pf = createClient(server.baseUrl, { token: server.token, ...server.tls });
    await pf.environments.createEnvironment({ environment: { name: "dev" } });
    const listed = await pf.environments.listEnvironments({});
    assert.deepEqual(listed.environments.map((e) => e.name), ["dev"]);
  });

  it("names the certificate's principal when no token is sent", async () => {
    const pf = createClient(server.baseUrl, { token: "", ...server.tls });
    await assert.rejects(pf.environments.listEnvironments({}), (e: unknown) => {
      assert.ok(e instanceof PromoflowError, String(e));
      assert.equal(e.code, Code.PermissionDenied);
      assert.match(e.rawMessage, /cert:deployer/);
      return true;
    });
  });

  it("tells a plaintext client that the server requires TLS", async () => {
    const plain = createClient(`http://127.0.0.1:${server.port}`, { token: server.token });
    await assert.rejects(plain.environments.listEnvironments({}), (e: unknown) => {
      assert.ok(e instanceof PromoflowError, String(e));
      assert.equal(e.code, Code.FailedPrecondition);
      assert.match(e.rawMessage, /requires TLS/);
      return true;
    });
  });

  it("is refused without a client certificate", async () => {
    const noCert = createClient(server.baseUrl, { token: server.token, ca: server.tls?.ca });
    await assert.rejects(noCert.environments.listEnvironments({}, { timeoutMs: 5000 }), (e: unknown) => {
      assert.ok(e instanceof PromoflowError, String(e));
      assert.match(e.rawMessage, /certificate required/);
      return true;
    });
  });

  it("wants both halves of a client identity", () => {
    assert.throws(() => createClient(server.baseUrl, { cert: server.tls?.cert }), /both cert and key/);
  });
});
