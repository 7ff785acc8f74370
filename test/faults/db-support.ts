/**
 * What the database fault suites share: a private PostgreSQL they may stop
 * and start, stand-ins that speak just enough of the wire protocol to fail
 * the way a real server does at a given moment, a log that can be read back,
 * and the error interceptor in front of an in-memory router.
 */
import { spawn } from "node:child_process";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { Writable } from "node:stream";
import { ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import type { Registry } from "prom-client";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import type { Clock } from "../../src/platform/clock";
import { createLogger, type Logger } from "../../src/platform/logger";
import { createErrorInterceptor } from "../../src/rpc/errors";
import { postgresBinDir, startPostgres, type PostgresServer } from "../harness/services";

export type LogLine = { level: number; msg: string; [field: string]: unknown };

/** A logger at `info` whose JSON lines are kept, parsed, in `lines`. */
export function capturingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split("\n")) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  return { log: createLogger("info", destination), lines };
}

/** A PostgreSQL of the suite's own, to stop and start at will (without blocking the event loop: a server in this process keeps serving meanwhile). */
export interface StoppablePostgres extends PostgresServer {
  /** `pg_ctl stop -m fast`: sessions get 57P01, then nothing listens. */
  stopFast(): Promise<void>;
  /** `pg_ctl stop -m immediate`: a crash; the next start recovers first (57P03 meanwhile). */
  crash(): Promise<void>;
  /** Starts it again; `wait: false` returns before it accepts connections. */
  start(wait?: boolean): Promise<void>;
}

export async function startStoppablePostgres(): Promise<StoppablePostgres> {
  const pg = await startPostgres();
  const bin = postgresBinDir();
  const dir = join(pg.dataDir, "..");
  const ctl = (...args: string[]) =>
    new Promise<void>((resolve, reject) => {
      const quoted = [join(bin, "pg_ctl"), "-D", pg.dataDir, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
      const child = process.getuid?.() === 0 ? spawn("su", ["postgres", "-s", "/bin/sh", "-c", quoted]) : spawn("sh", ["-c", quoted]);
      let output = "";
      child.stdout.on("data", (d) => (output += d));
      child.stderr.on("data", (d) => (output += d));
      child.once("error", reject);
      child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`pg_ctl ${args.join(" ")} failed (${code}):\n${output}`))));
    });
  const options = `-c listen_addresses=127.0.0.1 -p ${pg.port} -c unix_socket_directories=${dir} -c max_connections=100 -c fsync=off`;
  return {
    ...pg,
    stopFast: () => ctl("-m", "fast", "-w", "stop"),
    crash: () => ctl("-m", "immediate", "-w", "stop"),
    start: (wait = true) => ctl(wait ? "-w" : "-W", "-o", options, "-l", join(dir, "server.log"), "start"),
    stop() {
      try {
        pg.stop();
      } catch {
        // Stopped already by the test; its directory is removed all the same.
      }
    },
  };
}

/** A message of the PostgreSQL wire protocol: type byte, length, body. */
function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0);
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const cstr = (s: string) => Buffer.from(`${s}\0`);

/** ErrorResponse as the server sends it: severity, SQLSTATE, message. */
export function errorResponse(severity: string, code: string, text: string): Buffer {
  return message("E", Buffer.concat([cstr(`S${severity}`), cstr(`V${severity}`), cstr(`C${code}`), cstr(`M${text}`), Buffer.from([0])]));
}

const readyForQuery = () => message("Z", Buffer.from("I"));
const authenticationOk = () => message("R", Buffer.from([0, 0, 0, 0]));

function versionResult(): Buffer {
  const field = Buffer.concat([cstr("version"), Buffer.alloc(18)]);
  field.writeInt32BE(25, field.length - 12); // type oid: text
  field.writeInt16BE(-1, field.length - 8); // type size
  field.writeInt32BE(-1, field.length - 6); // type modifier
  const row = Buffer.from("PostgreSQL 15.0 on fake");
  const rowBody = Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(4), row]);
  rowBody.writeInt32BE(row.length, 2);
  return Buffer.concat([message("T", Buffer.concat([Buffer.from([0, 1]), field])), message("D", rowBody), message("C", cstr("SELECT 1")), readyForQuery()]);
}

/**
 * How a stand-in server fails:
 * - `fatal`: answers the startup message with a FATAL ErrorResponse, as a
 *   server starting up (57P03), recovering from a crash (57P02) or full
 *   (53300) does, and hangs up;
 * - `reset`: resets the connection on the startup message (ECONNRESET);
 * - `hang-up`: closes the connection on the startup message;
 * - `drop-on-begin`: a working session (trust authentication, answers
 *   `select version()` and anything else with an empty result) that drops
 *   the connection when a transaction begins.
 */
export type FakeBehaviour = { fatal: { code: string; message: string } } | "reset" | "hang-up" | "drop-on-begin";

export interface FakePostgres {
  url: string;
  close(): Promise<void>;
}

export async function fakePostgres(behaviour: FakeBehaviour): Promise<FakePostgres> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let started = false;
    let buffered = Buffer.alloc(0);
    socket.on("data", (chunk) => {
      if (!started) {
        started = true;
        if (behaviour === "reset") return socket.resetAndDestroy();
        if (behaviour === "hang-up") return socket.end();
        if (typeof behaviour === "object") return socket.end(errorResponse("FATAL", behaviour.fatal.code, behaviour.fatal.message));
        socket.write(Buffer.concat([authenticationOk(), readyForQuery()]));
        return;
      }
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 5) {
        const length = buffered.readInt32BE(1);
        if (buffered.length < length + 1) break;
        const type = String.fromCharCode(buffered[0]);
        const text = buffered
          .subarray(5, length + 1)
          .toString()
          .replace(/\0+$/, "");
        buffered = buffered.subarray(length + 1);
        if (type === "X") return socket.end();
        if (type !== "Q") continue;
        if (/^\s*begin\b/i.test(text)) return socket.destroy();
        socket.write(/version\(\)/i.test(text) ? versionResult() : Buffer.concat([message("I", Buffer.alloc(0)), readyForQuery()]));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/fake`,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * The error interceptor in front of an in-memory router whose IssueToken runs
 * `work` (the RPC stands in for any call: the interceptor does not care which).
 * `seen` gets the error each failed call left the interceptor with, also when
 * the client stopped waiting earlier (its deadline).
 */
export function interceptedCalls(
  log: Logger,
  options: { registry?: Registry; clock?: Clock; windowMs?: number } = {},
): { call(work: () => Promise<unknown>, callOptions?: { timeoutMs?: number }): Promise<ConnectError | undefined>; seen: ConnectError[] } {
  const work = new Map<string, () => Promise<unknown>>();
  let calls = 0;
  const seen: ConnectError[] = [];
  const record: Interceptor = (next) => async (req) => {
    try {
      return await next(req);
    } catch (err) {
      seen.push(ConnectError.from(err));
      throw err;
    }
  };
  const transport = createRouterTransport(
    (router) =>
      router.service(QueueService, {
        async issueToken(req) {
          await work.get(req.userId)?.();
          return {};
        },
      }),
    {
      router: {
        interceptors: [
          record,
          createErrorInterceptor(log, options.registry && { registry: options.registry }, { clock: options.clock, windowMs: options.windowMs }),
        ],
      },
    },
  );
  const client = createClient(QueueService, transport);
  return {
    seen,
    async call(run, callOptions = {}) {
      const id = `call-${++calls}`;
      work.set(id, run);
      try {
        return await client.issueToken({ userId: id }, callOptions).then(
          () => undefined,
          (err) => ConnectError.from(err),
        );
      } finally {
        work.delete(id);
      }
    },
  };
}

/** Polls `check` until it holds or `timeoutMs` passes. */
export async function eventually(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}
