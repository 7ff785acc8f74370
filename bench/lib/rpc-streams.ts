/**
 * Server memory per open WatchQueueStatus stream, for bench/rpc.ts: N streams
 * over gRPC (grpc-js, multiplexed on a few HTTP/2 connections) or over Connect
 * on HTTP/1.1 (connect-node, one connection per stream, as a browser holds
 * them), each on its own token. RSS of the server's process tree from /proc,
 * JS heap from its /metrics.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { grpc, serverStream, unary } from "../../test/e2e/grpc-js";
import type { RpcServer } from "./rpc-servers";

export type StreamStack = "grpc" | "connect-h1";

export interface StreamMemory {
  stack: StreamStack;
  streams: number;
  openSeconds: number;
  /** queue_open_streams as the server reports it once all are open. */
  serverReports: number;
  rssBytesPerStream: number;
  heapBytesPerStream: number;
}

const HEAP = "nodejs_heap_size_used_bytes";
const OPEN = "queue_open_streams";
const GRPC_CONNECTIONS = 10;

async function issueTokens(port: number, n: number, prefix: string): Promise<string[]> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const tokens: string[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < n) {
        const i = next++;
        tokens[i] = (await unary(client, QueueService.method.issueToken, { userId: `${prefix}-${i}` })).message.ticket!.token;
      }
    }),
  );
  client.close();
  return tokens;
}

/** Opens `n` streams on `stack`, waits for the first message on each, measures, then closes them. */
export async function measureStreamMemory(server: RpcServer, stack: StreamStack, n: number): Promise<StreamMemory> {
  const tokens = await issueTokens(server.port, n, `watch-${stack}`);
  // Settle after the token calls so their garbage is not counted as stream memory.
  await new Promise((r) => setTimeout(r, 1000));
  const m0 = await server.metrics!();
  const rss0 = server.rssBytes();
  const t0 = performance.now();
  const closers: (() => void)[] = [];
  if (stack === "grpc") {
    const clients = Array.from(
      { length: GRPC_CONNECTIONS },
      (_, i) => new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1, "bench.client": i }),
    );
    await Promise.all(
      tokens.map(
        (token, i) =>
          new Promise<void>((resolve, reject) => {
            const call = serverStream(clients[i % clients.length], QueueService.method.watchQueueStatus, { token });
            call.once("data", () => resolve());
            call.once("error", reject);
            closers.push(() => {
              call.on("error", () => undefined);
              call.cancel();
            });
          }),
      ),
    );
    closers.push(() => {
      for (const c of clients) c.close();
    });
  } else {
    const client: Client<typeof QueueService> = createClient(
      QueueService,
      createConnectTransport({ baseUrl: `http://127.0.0.1:${server.port}`, httpVersion: "1.1", useBinaryFormat: false }),
    );
    await Promise.all(
      tokens.map(async (token) => {
        const abort = new AbortController();
        const stream = client.watchQueueStatus({ token }, { signal: abort.signal })[Symbol.asyncIterator]();
        await stream.next();
        closers.push(() => {
          abort.abort();
          stream.return?.().catch(() => undefined);
        });
      }),
    );
  }
  const openSeconds = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 2000));
  const m1 = await server.metrics!();
  const rss1 = server.rssBytes();
  for (const close of closers) close();
  return {
    stack,
    streams: n,
    openSeconds,
    serverReports: m1.get(OPEN) ?? NaN,
    rssBytesPerStream: (rss1 - rss0) / n,
    heapBytesPerStream: ((m1.get(HEAP) ?? NaN) - (m0.get(HEAP) ?? NaN)) / n,
  };
}
