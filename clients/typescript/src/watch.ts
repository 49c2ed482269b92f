// Release streams that survive server restarts: on UNAVAILABLE (or a dropped
// connection) they reconnect and resume from the last seq / cursor received.
import { Code, ConnectError } from "@connectrpc/connect";
import type { ReleaseEvent, Release, WatchReleasesResponse } from "./gen/promoflow/v1/release_pb.js";
import { ReleaseStatus } from "./gen/promoflow/v1/release_pb.js";
import type { PromoflowClient } from "./client.js";
import { toPromoflowError } from "./errors.js";

export interface WatchOptions {
  /** 0 (default) = start with a snapshot; k > 0 = the events after seq k. */
  afterSeq?: bigint | number;
  /** Yield heartbeats too (default false: they are skipped). */
  heartbeats?: boolean;
  /** Give up after this long without a successful reconnect (default 60 s). */
  reconnectTimeoutMs?: number;
  /** Stops the watch. */
  signal?: AbortSignal;
}

export const FINAL_RELEASE_STATUSES: ReadonlySet<ReleaseStatus> = new Set([
  ReleaseStatus.SUCCEEDED,
  ReleaseStatus.FAILED,
  ReleaseStatus.TERMINATED,
]);

/**
 * Whether an error means "the connection dropped, try again": UNAVAILABLE, or
 * a transport failure that carries no gRPC status from the server (Node
 * reports a connection killed mid-stream as an HTTP/2 CANCEL, ECONNRESET as
 * aborted). Callers check their own AbortSignal first.
 */
export function isRetryable(error: unknown): boolean {
  const e = ConnectError.from(error);
  if (e.code === Code.Unavailable) {
    return true;
  }
  const fromServer = e.metadata.has("grpc-status");
  return (
    !fromServer &&
    (e.code === Code.Canceled || e.code === Code.Aborted || e.code === Code.Internal || e.code === Code.Unknown)
  );
}

class Backoff {
  private failingSince: number | undefined;
  private delay = 50;
  constructor(private readonly timeoutMs: number) {}

  reset(): void {
    this.failingSince = undefined;
    this.delay = 50;
  }

  /** Milliseconds to wait before retrying, or undefined to give up. */
  next(): number | undefined {
    const now = Date.now();
    this.failingSince ??= now;
    if (now - this.failingSince > this.timeoutMs) {
      return undefined;
    }
    const d = this.delay;
    this.delay = Math.min(this.delay * 2, 1000);
    return d;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Streams a release's events in seq order until the release is final.
 *
 * With `afterSeq` 0 the first event is a snapshot. When the connection drops
 * (UNAVAILABLE: the server restarted or is unreachable) it reconnects with
 * `afterSeq` = the last seq yielded, so there is no gap and no duplicate; it
 * throws UnavailableError when reconnecting fails for `reconnectTimeoutMs`.
 *
 *     for await (const event of watchRelease(pf, release.id)) console.log(event.seq, event.change.case);
 */
export async function* watchRelease(
  client: PromoflowClient,
  releaseId: string,
  options: WatchOptions = {},
): AsyncGenerator<ReleaseEvent, void, undefined> {
  let lastSeq = BigInt(options.afterSeq ?? 0);
  const backoff = new Backoff(options.reconnectTimeoutMs ?? 60_000);
  for (;;) {
    try {
      const stream = client.releases.watchRelease({ releaseId, afterSeq: lastSeq }, { signal: options.signal });
      for await (const response of stream) {
        const event = response.event;
        if (event === undefined) {
          continue;
        }
        backoff.reset();
        if (event.change.case === "heartbeat") {
          if (options.heartbeats) {
            yield event;
          }
          continue;
        }
        if (event.seq > lastSeq) {
          lastSeq = event.seq;
        }
        yield event;
      }
      return; // the stream ended with OK: the release is final
    } catch (e) {
      if (options.signal?.aborted || !isRetryable(e)) {
        throw toPromoflowError(e);
      }
      const delay = backoff.next();
      if (delay === undefined) {
        const err = ConnectError.from(e);
        throw toPromoflowError(new ConnectError(err.rawMessage, Code.Unavailable, err.metadata, undefined, e));
      }
      await sleep(delay, options.signal);
    }
  }
}

/** Waits until the release is final (watching it, with resume) and returns it. */
export async function waitRelease(
  client: PromoflowClient,
  releaseId: string,
  options: Omit<WatchOptions, "afterSeq" | "heartbeats"> = {},
): Promise<Release> {
  for await (const _event of watchRelease(client, releaseId, options)) {
    // only the end matters
  }
  const { release } = await client.releases.getRelease({ releaseId });
  if (release === undefined) {
    throw new Error(`GetRelease ${releaseId} returned no release`);
  }
  return release;
}

export interface WatchReleasesOptions {
  product?: string;
  flow?: string;
  /** Empty = from now; else a cursor received earlier. */
  afterCursor?: string;
  reconnectTimeoutMs?: number;
  signal?: AbortSignal;
}

/** Every event of the matching releases (with cursors), resuming from the last cursor on UNAVAILABLE. */
export async function* watchReleases(
  client: PromoflowClient,
  options: WatchReleasesOptions = {},
): AsyncGenerator<WatchReleasesResponse, void, undefined> {
  let cursor = options.afterCursor ?? "";
  const backoff = new Backoff(options.reconnectTimeoutMs ?? 60_000);
  for (;;) {
    try {
      const stream = client.releases.watchReleases(
        { product: options.product ?? "", flow: options.flow ?? "", afterCursor: cursor },
        { signal: options.signal },
      );
      for await (const response of stream) {
        backoff.reset();
        if (response.cursor !== "") {
          cursor = response.cursor;
        }
        yield response;
      }
      return;
    } catch (e) {
      if (options.signal?.aborted || !isRetryable(e)) {
        throw toPromoflowError(e);
      }
      const delay = backoff.next();
      if (delay === undefined) {
        throw toPromoflowError(e);
      }
      await sleep(delay, options.signal);
    }
  }
}
