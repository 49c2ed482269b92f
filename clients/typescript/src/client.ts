// The promoflow client: one gRPC transport (Connect-ES over HTTP/2) and a
// typed Connect client per service, with errors turned into PromoflowError.
import type { Client, Interceptor, Transport } from "@connectrpc/connect";
import { createClient as createConnectClient } from "@connectrpc/connect";
import { createGrpcTransport, type GrpcTransportOptions } from "@connectrpc/connect-node";
import { AuditService, TokenService } from "./gen/promoflow/v1/access_pb.js";
import { EnvironmentService } from "./gen/promoflow/v1/environment_pb.js";
import { FlowService } from "./gen/promoflow/v1/flow_pb.js";
import { ProductService } from "./gen/promoflow/v1/product_pb.js";
import { ReleaseService } from "./gen/promoflow/v1/release_pb.js";
import { WorkflowService } from "./gen/promoflow/v1/workflow_pb.js";
import { toPromoflowError } from "./errors.js";

/** Typed clients of every promoflow service, sharing one transport. */
export interface PromoflowClient {
  readonly environments: Client<typeof EnvironmentService>;
  readonly workflows: Client<typeof WorkflowService>;
  readonly products: Client<typeof ProductService>;
  readonly flows: Client<typeof FlowService>;
  readonly releases: Client<typeof ReleaseService>;
  readonly tokens: Client<typeof TokenService>;
  readonly audit: Client<typeof AuditService>;
  readonly transport: Transport;
}

export type ClientOptions = Partial<Omit<GrpcTransportOptions, "baseUrl">> & {
  /**
   * The API token (`pf_…`) sent as `authorization: Bearer` with every call.
   * Unset: `PROMOFLOW_TOKEN` from the environment; empty string: none.
   */
  token?: string;
  /**
   * TLS (an `https://` URL): the PEM of the CA that signed the server's
   * certificate. Unset: Node's bundled public roots.
   */
  ca?: string | Buffer;
  /** Mutual TLS: the client certificate (PEM) and its key; give both. */
  cert?: string | Buffer;
  key?: string | Buffer;
};

/** Adds `authorization: Bearer <token>` to every call. */
export function bearer(token: string): Interceptor {
  const value = `Bearer ${token.trim()}`;
  return (next) => async (req) => {
    req.header.set("authorization", value);
    return next(req);
  };
}

/** Rethrows every error of a call, unary or streaming, as a PromoflowError. */
export const typedErrors: Interceptor = (next) => async (req) => {
  try {
    const res = await next(req);
    if (!res.stream) {
      return res;
    }
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        try {
          yield* messages;
        } catch (e) {
          throw toPromoflowError(e);
        }
      })(),
    };
  } catch (e) {
    throw toPromoflowError(e);
  }
};

/**
 * A client of the promoflow server at `baseUrl` (`http://host:port`; a bare
 * `host:port` means plaintext http; `https://host:port` is TLS, with `ca`,
 * `cert` and `key` for a private CA and mutual TLS) over the gRPC protocol.
 *
 *     const pf = createClient("http://127.0.0.1:50051");
 *     const { environment } = await pf.environments.createEnvironment({ environment: { name: "dev" } });
 */
export function createClient(baseUrl: string, options: ClientOptions = {}): PromoflowClient {
  const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(baseUrl) ? baseUrl : `http://${baseUrl}`;
  const { token: given, ca, cert, key, ...transportOptions } = options;
  const token = given ?? process.env.PROMOFLOW_TOKEN ?? "";
  if ((cert === undefined) !== (key === undefined)) {
    throw new Error("createClient: give both cert and key (mutual TLS), or neither");
  }
  // The TLS files become Node's http2 connect options, next to any the caller set.
  const tls = Object.fromEntries(Object.entries({ ca, cert, key }).filter(([, v]) => v !== undefined));
  const transport = createGrpcTransport({
    ...transportOptions,
    ...(Object.keys(tls).length > 0 ? { nodeOptions: { ...transportOptions.nodeOptions, ...tls } } : {}),
    baseUrl: url,
    interceptors: [typedErrors, ...(token ? [bearer(token)] : []), ...(options.interceptors ?? [])],
  });
  return {
    environments: createConnectClient(EnvironmentService, transport),
    workflows: createConnectClient(WorkflowService, transport),
    products: createConnectClient(ProductService, transport),
    flows: createConnectClient(FlowService, transport),
    releases: createConnectClient(ReleaseService, transport),
    tokens: createConnectClient(TokenService, transport),
    audit: createConnectClient(AuditService, transport),
    transport,
  };
}
