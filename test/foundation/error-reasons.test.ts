/**
 * The reasons are part of the contract: boxoffice.error.v1.ErrorReason
 * (proto/boxoffice/error/v1/error_reason.proto) lists them, the code names
 * them only through src/platform/reasons.ts (the browser client through its
 * generated copy of the enum), and the README's "Errors" table and each RPC's
 * comment in the service protos say the same as the enum.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";
import type { DescService } from "@bufbuild/protobuf";
import { ErrorReason, ErrorReasonSchema } from "../../gen/boxoffice/error/v1/error_reason_pb";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { WalletService } from "../../gen/boxoffice/wallet/v1/wallet_service_pb";
import { ALL_REASONS, Reason, reason } from "../../src/platform/reasons";
import { ERROR_CODE_NAMES } from "../../src/rpc/codes";
import { GATED_PROCEDURES } from "../../src/rpc/gate";
import { isPublic } from "../../src/rpc/identity";

const ROOT = join(__dirname, "../..");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");

/** gRPC code names as the README and the proto comments spell them. */
const CODES = new Set(ERROR_CODE_NAMES);
const REASONS = new Set<string>(ALL_REASONS);
const sorted = (xs: Iterable<string>) => [...new Set(xs)].sort();

describe("the enum is the one list", () => {
  test("each value is sent as its proto name without ERROR_REASON_, which is also its generated TypeScript name", () => {
    const values = ErrorReasonSchema.values.filter((v) => v.number !== 0);
    expect(values.length).toBeGreaterThan(30);
    for (const v of values) {
      const wire = v.name.replace(/^ERROR_REASON_/, "");
      expect(reason(v.number as ErrorReason)).toBe(wire);
      expect(Reason[wire as Reason]).toBe(wire);
      expect(ErrorReason[wire as keyof typeof ErrorReason]).toBe(v.number);
      // google.rpc.ErrorInfo: at most 63 characters of UPPER_SNAKE_CASE.
      expect(wire).toMatch(/^[A-Z][A-Z0-9_]{0,61}[A-Z0-9]$/);
    }
    expect(ALL_REASONS).toEqual(values.map((v) => v.name.replace(/^ERROR_REASON_/, "")));
    expect(Object.keys(Reason).sort()).toEqual([...ALL_REASONS].sort());
    expect(() => reason(ErrorReason.UNSPECIFIED)).toThrow();
  });
});

describe("no reason is spelled out as a string", () => {
  /** The one file allowed to say a reason's name; today it builds them all from the descriptor and says none. */
  const SOURCE = "src/platform/reasons.ts";

  /** Every string literal (and literal type) in `text` that is a reason's name, with its line. */
  function strayReasons(file: string, text: string): string[] {
    const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
    const found: string[] = [];
    const visit = (node: ts.Node) => {
      if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && REASONS.has(node.text)) {
        found.push(`${file}:${sf.getLineAndCharacterOfPosition(node.getStart()).line + 1}: "${node.text}"`);
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
    return found;
  }

  function sources(dir: string): string[] {
    return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith(".ts"))
      .map((e) => relative(ROOT, join(e.parentPath, e.name)))
      .filter((f) => !f.split("/").includes("gen"));
  }

  test("the check finds literals and literal types, not comments, names or longer strings", () => {
    const text = [
      `// HOLD_EXPIRED in a comment`,
      `const a = Reason.HOLD_EXPIRED;`,
      `const b = "HOLD_EXPIRED";`,
      `type T = 'SEAT_UNAVAILABLE' | "held";`,
      "const c = `QUEUE_TOKEN_WAITING`;",
      `const d = "HOLD_EXPIRED is not a reason name";`,
      `const e = { RATE_LIMITED: 1 };`,
    ].join("\n");
    expect(strayReasons("x.ts", text)).toEqual(['x.ts:3: "HOLD_EXPIRED"', 'x.ts:4: "SEAT_UNAVAILABLE"', 'x.ts:5: "QUEUE_TOKEN_WAITING"']);
  });

  test("in src/ and packages/client/src (outside the generated code), only through the enum", () => {
    const files = [...sources("src"), ...sources("packages/client/src")].filter((f) => f !== SOURCE);
    expect(files.length).toBeGreaterThan(50);
    expect(files.flatMap((f) => strayReasons(f, read(f)))).toEqual([]);
  });
});

/** Codes and reasons of each row of README's "Errors" table. */
function readmeTable(): Map<string, Set<string>> {
  const readme = read("README.md");
  const start = readme.indexOf("\n## Errors");
  const section = readme.slice(start, readme.indexOf("\n## ", start + 1));
  const rows = new Map<string, Set<string>>();
  for (const [row] of section.matchAll(/^\|.*\|$/gm)) {
    const [, first, rest] = /^\|([^|]*)\|(.*)\|$/.exec(row)!;
    const code = first.trim().split(/\s+/)[0];
    if (!CODES.has(code)) continue; // the header and its rule
    rows.set(code, new Set([...rest.matchAll(/`([A-Z][A-Z0-9_]{3,})`/g)].map((m) => m[1])));
  }
  return rows;
}

/** The settings the table names besides reasons (`DB_LOCK_TIMEOUT`): the variables src/config.ts reads. */
const SETTINGS = new Set([...read("src/config.ts").matchAll(/^\s+([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]));

/** The code(s) each enum value's comment starts with ("FAILED_PRECONDITION, NOT_FOUND: ..."). */
function enumCodes(): Map<string, string[]> {
  const proto = read("proto/boxoffice/error/v1/error_reason.proto");
  const codes = new Map<string, string[]>();
  for (const m of proto.matchAll(/((?:^ {2}\/\/.*\n)+) {2}ERROR_REASON_([A-Z0-9_]+) = \d+;/gm)) {
    const comment = m[1].replace(/^ {2}\/\/ ?/gm, "").replace(/\n/g, " ");
    if (m[2] !== "UNSPECIFIED") codes.set(m[2], comment.slice(0, comment.indexOf(":")).split(/,\s*/));
  }
  return codes;
}

describe("the README's Errors table", () => {
  const table = readmeTable();

  test("names every reason of the enum, and nothing else but settings", () => {
    const named = [...table.values()].flatMap((s) => [...s]).filter((n) => !SETTINGS.has(n));
    expect(sorted(ALL_REASONS.filter((r) => !named.includes(r)))).toEqual([]);
    expect(sorted(named.filter((n) => !REASONS.has(n)))).toEqual([]);
  });

  test("puts each reason under the code(s) its enum comment gives", () => {
    const codes = enumCodes();
    expect(sorted(codes.keys())).toEqual(sorted(ALL_REASONS));
    for (const r of ALL_REASONS) {
      const rows = [...table].filter(([, names]) => names.has(r)).map(([code]) => code);
      expect({ reason: r, codes: sorted(rows) }).toEqual({ reason: r, codes: sorted(codes.get(r)!) });
    }
  });
});

describe("each RPC's comment lists its errors", () => {
  const SERVICES: [DescService, string][] = [
    [QueueService, "proto/boxoffice/queue/v1/queue_service.proto"],
    [ConcertService, "proto/boxoffice/concert/v1/concert_service.proto"],
    [ReservationService, "proto/boxoffice/reservation/v1/reservation_service.proto"],
    [WalletService, "proto/boxoffice/wallet/v1/wallet_service.proto"],
  ];
  const table = readmeTable();

  /** The "Errors:" block of the comment above `rpc <name>(`: its text, and code -> the reason-like names on its lines. */
  function errorsOf(proto: string, rpc: string): { text: string; errors: Map<string, Set<string>> } {
    const lines = proto.split("\n");
    const at = lines.findIndex((l) => l.startsWith(`  rpc ${rpc}(`));
    expect(at).toBeGreaterThan(0);
    let top = at;
    while (lines[top - 1]?.startsWith("  //")) top--;
    const comment = lines.slice(top, at);
    const from = comment.indexOf("  // Errors:");
    expect({ rpc, hasErrors: from >= 0 }).toEqual({ rpc, hasErrors: true });
    const block = comment.slice(from + 1);
    const errors = new Map<string, Set<string>>();
    let current: Set<string> | undefined;
    for (const line of block) {
      const entry = /^ {2}\/\/ {3}([A-Z_]+): (.*)$/.exec(line);
      if (entry) {
        current = new Set();
        errors.set(entry[1], current);
      }
      const text = entry ? entry[2] : line;
      for (const m of text.matchAll(/\b[A-Z][A-Z0-9_]{3,}\b/g)) if (!CODES.has(m[0])) current?.add(m[0]);
    }
    return { text: block.map((l) => l.replace(/^ {2}\/\/\s*/, "")).join(" "), errors };
  }

  const rpcs = SERVICES.flatMap(([service, file]) =>
    service.methods.map((m) => ({ service, method: m, name: `${service.typeName}/${m.name}`, ...errorsOf(read(file), m.name) })),
  );
  const has = (errors: Map<string, Set<string>>, code: string, ...reasons: string[]) => reasons.filter((r) => !errors.get(code)?.has(r));

  test.each(rpcs.map((r) => [r.name, r] as const))("%s", (_name, { service, method, errors }) => {
    for (const code of errors.keys()) expect(CODES.has(code)).toBe(true);
    // Only reasons of the enum, each under a code the README gives it.
    for (const [code, reasons] of errors) {
      for (const r of reasons) {
        expect({ code, reason: r, inEnum: REASONS.has(r) }).toEqual({ code, reason: r, inEnum: true });
        expect({ code, reason: r, inReadmeRow: table.get(code)?.has(r) ?? false }).toEqual({ code, reason: r, inReadmeRow: true });
      }
    }
    // The pipeline's: bearer tokens, the per-address budget of anonymous calls, the identity provider's keys.
    const refusedToken = [
      Reason.AUTH_TOKEN_MALFORMED,
      Reason.AUTH_TOKEN_EXPIRED,
      Reason.AUTH_TOKEN_NOT_YET_VALID,
      Reason.AUTH_TOKEN_INVALID,
      Reason.AUTH_SUBJECT_UNSUPPORTED,
    ];
    expect(has(errors, "UNAUTHENTICATED", ...refusedToken)).toEqual([]);
    expect(errors.get("UNAUTHENTICATED")?.has(Reason.AUTH_TOKEN_MISSING)).toBe(!isPublic(service.typeName, method.name));
    expect(has(errors, "RESOURCE_EXHAUSTED", Reason.RATE_LIMITED)).toEqual([]);
    expect(has(errors, "UNAVAILABLE", Reason.AUTH_KEYS_UNAVAILABLE)).toEqual([]);
    // protovalidate: every request with fields has rules.
    expect(errors.has("INVALID_ARGUMENT")).toBe(method.input.fields.length > 0);
    // The queue gate.
    const gated = GATED_PROCEDURES.has(`${service.typeName}/${method.name}`);
    const gate = [Reason.QUEUE_TOKEN_MISSING, Reason.QUEUE_TOKEN_INVALID, Reason.QUEUE_TOKEN_EXPIRED, Reason.QUEUE_TOKEN_WAITING];
    if (gated) {
      expect(has(errors, "FAILED_PRECONDITION", ...gate)).toEqual([]);
      expect(has(errors, "PERMISSION_DENIED", Reason.QUEUE_TOKEN_NOT_YOURS)).toEqual([]);
      expect(has(errors, "UNAVAILABLE", Reason.QUEUE_UNAVAILABLE)).toEqual([]);
    } else {
      expect(errors.get("FAILED_PRECONDITION")?.has(Reason.QUEUE_TOKEN_MISSING) ?? false).toBe(false);
    }
    // The database's, for every RPC that reads it (all but the queue's).
    if (service !== QueueService) {
      expect(has(errors, "UNAVAILABLE", Reason.DATABASE_UNAVAILABLE, Reason.DATABASE_TIMEOUT, Reason.LOCK_TIMEOUT)).toEqual([]);
    } else {
      expect(has(errors, "UNAVAILABLE", Reason.QUEUE_UNAVAILABLE)).toEqual([]);
    }
  });

  test("the per-user (per-wallet) budgets are documented on IssueToken, HoldSeat and ChargeBalance only", () => {
    const perUser = rpcs.filter((r) => /RATE_LIMITED \(per (user|wallet) and per address/.test(r.text));
    expect(perUser.map((r) => r.method.name).sort()).toEqual(["ChargeBalance", "HoldSeat", "IssueToken"]);
  });
});
