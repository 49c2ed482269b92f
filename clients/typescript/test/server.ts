// A real `promoflow serve` per test: free port, temporary SQLite database,
// restartable on the same port and database.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, accessSync, constants } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient, type ClientOptions } from "../src/index.js";

const HERE = dirname(fileURLToPath(import.meta.url));
// dist/test -> clients/typescript -> repo root
const REPO_ROOT = resolve(HERE, "..", "..", "..", "..");

function binary(): string {
  const bin = process.env["PROMOFLOW_BIN"] || join(REPO_ROOT, "target", "debug", "promoflow");
  accessSync(bin, constants.X_OK);
  return bin;
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Server {
  readonly dir: string;
  readonly logPath: string;
  port = 0;
  /** Extra `promoflow serve` flags (TLS) and the client options that reach the server. */
  serveArgs: string[] = [];
  tls: Pick<ClientOptions, "ca" | "cert" | "key"> | undefined;
  private proc: ChildProcess | undefined;
  private exited: Promise<void> | undefined;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "promoflow-ts-"));
    this.logPath = join(this.dir, "server.log");
  }

  get baseUrl(): string {
    return `${this.tls ? "https" : "http"}://127.0.0.1:${this.port}`;
  }

  /** The test certificates of scripts/test-certs, in `<dir>/certs`. */
  certs(): { ca: string; serverCert: string; serverKey: string; cert: string; key: string } {
    const dir = join(this.dir, "certs");
    execFileSync(join(REPO_ROOT, "scripts", "test-certs"), [dir], { stdio: ["ignore", "inherit", "inherit"] });
    const read = (name: string) => readFileSync(join(dir, name), "utf8");
    return { ca: read("ca.pem"), serverCert: join(dir, "server.pem"), serverKey: join(dir, "server.key"), cert: read("client.pem"), key: read("client.key") };
  }

  /** A server that requires mutual TLS, and is reached with the test CA and client certificate. */
  static async startMutualTls(): Promise<Server> {
    const s = new Server();
    const c = s.certs();
    s.serveArgs = ["--tls-cert", c.serverCert, "--tls-key", c.serverKey, "--tls-client-ca", join(s.dir, "certs", "ca.pem")];
    s.tls = { ca: c.ca, cert: c.cert, key: c.key };
    s.port = await freePort();
    await s.start();
    return s;
  }

  static async start(): Promise<Server> {
    const s = new Server();
    s.port = await freePort();
    await s.start();
    return s;
  }

  async start(): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const log = openSync(this.logPath, "a");
      const proc = spawn(
        binary(),
        ["serve", "--listen", `127.0.0.1:${this.port}`, "--database-url", `sqlite://${join(this.dir, "promoflow.db")}?mode=rwc`, "--data-dir", join(this.dir, "data"), ...this.serveArgs],
        { stdio: ["ignore", log, log], env: { ...process.env, RUST_LOG: process.env["RUST_LOG"] ?? "info" } },
      );
      closeSync(log);
      this.proc = proc;
      this.exited = new Promise((r) => proc.once("exit", () => r()));
      if (await this.waitReady(30_000)) {
        return;
      }
      const log2 = this.log();
      await this.stop();
      if (/in use/i.test(log2)) {
        await sleep(200);
        continue;
      }
      break;
    }
    throw new Error(`promoflow server did not start; log:\n${this.log()}`);
  }

  /** The admin token the server wrote on its first start. */
  get token(): string {
    return readFileSync(join(this.dir, "data", "admin.token"), "utf8").trim();
  }

  private async waitReady(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.proc?.exitCode !== null || this.proc?.signalCode !== null) {
        return false;
      }
      try {
        const pf = createClient(this.baseUrl, { token: this.token, ...this.tls });
        await pf.environments.listEnvironments({ pageSize: 1 }, { timeoutMs: 2000 });
        return true;
      } catch {
        await sleep(100);
      }
    }
    return false;
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const proc = this.proc;
    if (proc === undefined) {
      return;
    }
    this.proc = undefined;
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
      await this.exited;
      clearTimeout(timer);
    }
  }

  async restart(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    await this.stop(signal);
    await this.start();
  }

  log(): string {
    try {
      return readFileSync(this.logPath, "utf8").split("\n").slice(-60).join("\n");
    } catch {
      return "(no log)";
    }
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
