/**
 * TLS on the public port: the certificate and key are checked at start, ALPN
 * sends HTTP/2 clients to the h2 server and the rest to the HTTP/1.1 server,
 * and the head deadline still closes connections that never send a request,
 * whether they stall before or after the handshake.
 */
import { writeFileSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { join } from "node:path";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { QueueStatus } from "../../gen/boxoffice/queue/v1/queue_pb";
import { ConfigError, loadConfig } from "../../src/config";
import { createTestDatabase, startTestServer, type TestDatabase, type TestServer } from "../harness";
import { makeCertificate, type TestCertificate } from "./tls-cert";

const HEADERS_TIMEOUT = 400;
/** Timers and a loaded machine: what "on time" may add. */
const SLACK = 1500;

let pki: TestCertificate;
let db: TestDatabase;
let s: TestServer;
let baseUrl: string;

beforeAll(async () => {
  pki = makeCertificate();
  db = await createTestDatabase();
  s = await startTestServer({
    DATABASE_URL: db.url,
    SEED_DEMO_CATALOG: "true",
    TLS_CERT_FILE: pki.certFile,
    TLS_KEY_FILE: pki.keyFile,
    HEADERS_TIMEOUT: `${HEADERS_TIMEOUT}ms`,
  });
  baseUrl = `https://localhost:${s.port}`;
});

afterAll(async () => {
  await s?.stop();
  await db?.drop();
  pki?.remove();
});

describe("configuration", () => {
  test("one of TLS_CERT_FILE and TLS_KEY_FILE without the other is refused", () => {
    expect(() => loadConfig({ TLS_CERT_FILE: pki.certFile })).toThrow(/TLS_KEY_FILE: required with TLS_CERT_FILE/);
    expect(() => loadConfig({ TLS_KEY_FILE: pki.keyFile })).toThrow(/TLS_CERT_FILE: required with TLS_KEY_FILE/);
  });

  test("an unreadable file is named", () => {
    const missing = join(pki.dir, "nope.pem");
    let thrown: unknown;
    try {
      loadConfig({ TLS_CERT_FILE: missing, TLS_KEY_FILE: pki.keyFile });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as Error).message).toContain(`TLS_CERT_FILE: cannot read ${missing}: ENOENT`);
  });

  test("a key that is not the certificate's is refused at start", () => {
    const other = makeCertificate();
    try {
      expect(() => loadConfig({ TLS_CERT_FILE: pki.certFile, TLS_KEY_FILE: other.keyFile })).toThrow(/not a usable PEM certificate and matching private key/);
      const garbage = join(other.dir, "garbage.pem");
      writeFileSync(garbage, "not a certificate\n");
      expect(() => loadConfig({ TLS_CERT_FILE: garbage, TLS_KEY_FILE: pki.keyFile })).toThrow(ConfigError);
    } finally {
      other.remove();
    }
  });

  test("both files set: the PEM contents are loaded; a one-shot command does not read them", () => {
    const c = loadConfig({ TLS_CERT_FILE: pki.certFile, TLS_KEY_FILE: pki.keyFile });
    expect(c.tls?.cert.equals(pki.cert)).toBe(true);
    expect(loadConfig({ TLS_CERT_FILE: join(pki.dir, "gone"), TLS_KEY_FILE: join(pki.dir, "gone") }, { serving: false }).tls).toBeUndefined();
  });
});

describe("calls over TLS", () => {
  test("Connect over HTTP/1.1", async () => {
    const transport = createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions: { ca: pki.cert } });
    const res = await createClient(ConcertService, transport).listConcerts({});
    expect(res.concerts.length).toBeGreaterThan(0);
  });

  test("gRPC-Web and gRPC over HTTP/2, a server stream included", async () => {
    const grpcWeb = createGrpcWebTransport({ baseUrl, httpVersion: "2", nodeOptions: { ca: pki.cert } });
    expect((await createClient(ConcertService, grpcWeb).listConcerts({})).concerts.length).toBeGreaterThan(0);

    const grpc = createGrpcTransport({ baseUrl, nodeOptions: { ca: pki.cert } });
    const queue = createClient(QueueService, grpc);
    const { ticket } = await queue.issueToken({ userId: "tls-user" });
    const seen: QueueStatus[] = [];
    for await (const update of queue.watchQueueStatus({ token: ticket!.token })) {
      seen.push(update.ticket!.status);
      if (update.ticket?.status === QueueStatus.ACTIVE) break;
    }
    expect(seen.at(-1)).toBe(QueueStatus.ACTIVE);
  });

  test("a client that does not trust the certificate is refused by its own TLS check", async () => {
    const transport = createConnectTransport({ baseUrl, httpVersion: "1.1" });
    await expect(createClient(ConcertService, transport).listConcerts({})).rejects.toThrow(/self[- ]signed certificate/);
  });

  test("ALPN: h2 when offered, HTTP/1.1 otherwise", async () => {
    for (const [offered, agreed] of [
      [["h2", "http/1.1"], "h2"],
      [["http/1.1"], "http/1.1"],
    ] as const) {
      const socket = await tlsSocket([...offered]);
      expect(socket.alpnProtocol).toBe(agreed);
      socket.destroy();
    }
  });
});

describe("the head deadline over TLS", () => {
  test("a connection that never starts the handshake is closed", async () => {
    const since = Date.now();
    const socket = await new Promise<Socket>((resolve, reject) => {
      const c = netConnect(s.port, "127.0.0.1", () => resolve(c));
      c.on("error", reject);
    });
    const afterMs = await closedWithin(socket, since);
    expect(afterMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT - 50);
    expect(afterMs).toBeLessThan(HEADERS_TIMEOUT + SLACK);
  });

  test.each([["h2"], ["http/1.1"]])("a %s connection that completes the handshake but sends no request is closed", async (protocol) => {
    const since = Date.now();
    const socket = await tlsSocket([protocol]);
    const afterMs = await closedWithin(socket, since);
    expect(afterMs).toBeLessThan(HEADERS_TIMEOUT + SLACK);
  });
});

function tlsSocket(ALPNProtocols: string[]): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: "127.0.0.1", port: s.port, servername: "localhost", ca: pki.cert, ALPNProtocols }, () => resolve(socket));
    socket.on("error", reject);
  });
}

/** Milliseconds from `since` until the server closed the socket; Infinity after 10 s. */
function closedWithin(socket: Socket, since: number): Promise<number> {
  socket.on("error", () => {});
  socket.resume();
  return new Promise((resolve) => {
    const giveUp = setTimeout(() => {
      socket.destroy();
      resolve(Infinity);
    }, 10_000);
    socket.once("close", () => {
      clearTimeout(giveUp);
      resolve(Date.now() - since);
    });
  });
}
