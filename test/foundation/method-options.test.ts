/**
 * Which RPC needs a bearer token, a scope or a queue token is declared in the
 * protos ((boxoffice.options.v1.access)) and read from the generated
 * descriptors: these pin what the declarations say, that the server reads
 * them, and that an RPC without one stops the server at start.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { create, createFileRegistry, getOption, hasOption, setExtension, type DescService, type MessageInitShape } from "@bufbuild/protobuf";
import { file_google_protobuf_empty, FileDescriptorProtoSchema, MethodOptionsSchema, type MethodOptions } from "@bufbuild/protobuf/wkt";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { access, Auth, MethodAccessSchema, QueueToken } from "../../gen/boxoffice/options/v1/options_pb";
import { Health } from "../../gen/grpc/health/v1/health_pb";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb";
import { API_SERVICES } from "../../src/routes";
import { file_boxoffice_concert_v1_concert_service } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { file_boxoffice_queue_v1_queue_service } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { file_boxoffice_reservation_v1_reservation_service } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { file_boxoffice_wallet_v1_wallet_service } from "../../gen/boxoffice/wallet/v1/wallet_service_pb";
import { SCOPES } from "../../src/rpc/auth";
import { GATED_PROCEDURES } from "../../src/rpc/gate";
import { isPublic } from "../../src/rpc/identity";
import { accessOf, BOXOFFICE_SERVICES, checkAccessDeclared, gatedProcedures, methodAccess, type MethodAccess } from "../../src/rpc/method-options";

const rpcs = BOXOFFICE_SERVICES.flatMap((s) => s.methods.map((m) => ({ name: `${s.typeName}/${m.name}`, short: m.name, method: m })));

test("the boxoffice services are every service the boxoffice protos define", () => {
  const defined = [
    file_boxoffice_queue_v1_queue_service,
    file_boxoffice_concert_v1_concert_service,
    file_boxoffice_reservation_v1_reservation_service,
    file_boxoffice_wallet_v1_wallet_service,
  ].flatMap((f) => f.services.map((s) => s.typeName));
  expect(BOXOFFICE_SERVICES.map((s) => s.typeName).sort()).toEqual(defined.sort());
  expect(API_SERVICES).toBe(BOXOFFICE_SERVICES);
  expect(rpcs).toHaveLength(14);
});

test("every RPC of every boxoffice service carries the option, with both rules declared", () => {
  for (const { name, method } of rpcs) {
    expect({ name, declared: hasOption(method, access) }).toEqual({ name, declared: true });
    const a = getOption(method, access);
    expect({ name, auth: a.auth !== Auth.UNSPECIFIED, queueToken: a.queueToken !== QueueToken.UNSPECIFIED }).toEqual({ name, auth: true, queueToken: true });
  }
  expect(() => checkAccessDeclared()).not.toThrow();
});

test("the declarations reproduce the policy the server enforced before they existed", () => {
  const table = Object.fromEntries(rpcs.map(({ short, method }) => [short, methodAccess(method)]));
  const user = (anyUserScope: string = SCOPES.service): MethodAccess => ({ public: false, queueToken: false, requiredScope: undefined, anyUserScope });
  const gated: MethodAccess = { ...user(), queueToken: true };
  expect(table).toEqual({
    IssueToken: user(),
    GetQueueStatus: user(),
    WatchQueueStatus: user(),
    ListConcerts: { public: true, queueToken: false, requiredScope: undefined, anyUserScope: undefined },
    ListAvailableDates: gated,
    ListAvailableSeats: gated,
    HoldSeat: gated,
    CancelHold: gated,
    PayReservation: gated,
    GetReservation: user(),
    ListReservations: user(),
    ChargeBalance: { ...user(SCOPES.walletCharge), requiredScope: SCOPES.walletCharge },
    GetBalance: user(),
    ListWalletEntries: user(),
  });
});

test("the gated set is exactly the five booking RPCs, as GATED_PROCEDURES and by name", () => {
  const five = [
    "boxoffice.concert.v1.ConcertService/ListAvailableDates",
    "boxoffice.concert.v1.ConcertService/ListAvailableSeats",
    "boxoffice.reservation.v1.ReservationService/CancelHold",
    "boxoffice.reservation.v1.ReservationService/HoldSeat",
    "boxoffice.reservation.v1.ReservationService/PayReservation",
  ];
  expect([...GATED_PROCEDURES].sort()).toEqual(five);
  expect([...gatedProcedures()].sort()).toEqual(five);
  expect(
    rpcs
      .filter((r) => accessOf(r.method.parent.typeName, r.short)?.queueToken)
      .map((r) => r.name)
      .sort(),
  ).toEqual(five);
});

test("health and reflection are public infrastructure without an option; an unknown RPC is nobody's", () => {
  expect(hasOption(Health.method.check, access)).toBe(false);
  for (const m of [Health.method.check, Health.method.watch, ServerReflection.method.serverReflectionInfo]) {
    expect(methodAccess(m)).toEqual({ public: true, queueToken: false, requiredScope: undefined, anyUserScope: undefined });
    expect(isPublic(m.parent.typeName, m.name)).toBe(true);
  }
  expect(isPublic(ConcertService.typeName, "ListConcerts")).toBe(true);
  expect(isPublic(ConcertService.typeName, "ListAvailableDates")).toBe(false);
  expect(accessOf(ConcertService.typeName, "NoSuchMethod")).toBeUndefined();
  expect(isPublic("boxoffice.nosuch.v1.NoSuchService", "ListConcerts")).toBe(false);
});

/** A service built at run time, as a proto with these methods' options would generate it. */
function serviceWith(...methods: { name: string; options?: MethodOptions }[]): DescService {
  const file = create(FileDescriptorProtoSchema, {
    name: "probe/v1/probe.proto",
    package: "probe.v1",
    dependency: ["google/protobuf/empty.proto"],
    syntax: "proto3",
    service: [
      {
        name: "ProbeService",
        method: methods.map((m) => ({ name: m.name, inputType: ".google.protobuf.Empty", outputType: ".google.protobuf.Empty", options: m.options })),
      },
    ],
  });
  const registry = createFileRegistry(file, (name) => (name === file_google_protobuf_empty.proto.name ? file_google_protobuf_empty : undefined));
  return registry.getService("probe.v1.ProbeService")!;
}

function declaring(init: MessageInitShape<typeof MethodAccessSchema>): MethodOptions {
  const options = create(MethodOptionsSchema);
  setExtension(options, access, create(MethodAccessSchema, init));
  return options;
}

describe("an RPC that declares no usable access stops the server at start", () => {
  test("no option: refused, named, never treated as public", () => {
    const probe = serviceWith({ name: "Forgotten" }, { name: "Fine", options: declaring({ auth: Auth.USER, queueToken: QueueToken.NOT_REQUIRED }) });
    expect(() => checkAccessDeclared([probe])).toThrow(/probe\.v1\.ProbeService\/Forgotten declares no \(boxoffice\.options\.v1\.access\) option/);
    expect(() => checkAccessDeclared([probe])).not.toThrow(/Fine/);
    expect(() => methodAccess(probe.methods[0])).toThrow(/declares no/);
    expect(methodAccess(probe.methods[1])).toEqual({ public: false, queueToken: false, requiredScope: undefined, anyUserScope: undefined });
  });

  test.each([
    ["auth left unspecified", { queueToken: QueueToken.NOT_REQUIRED }, /auth must be AUTH_PUBLIC or AUTH_USER/],
    ["queue_token left unspecified", { auth: Auth.USER }, /queue_token must be/],
    ["a public RPC behind the queue", { auth: Auth.PUBLIC, queueToken: QueueToken.REQUIRED }, /AUTH_PUBLIC, so it cannot require a queue token/],
    ["a public RPC with a scope", { auth: Auth.PUBLIC, queueToken: QueueToken.NOT_REQUIRED, requiredScope: SCOPES.walletCharge }, /AUTH_PUBLIC/],
    [
      "a misspelt scope",
      { auth: Auth.USER, queueToken: QueueToken.NOT_REQUIRED, requiredScope: "wallet:chrage" },
      /"wallet:chrage", which the server does not know/,
    ],
    ["a misspelt any_user_scope", { auth: Auth.USER, queueToken: QueueToken.NOT_REQUIRED, anyUserScope: "boxoffice:svc" }, /"boxoffice:svc"/],
  ] as const)("%s", (_what, init, message) => {
    const probe = serviceWith({ name: "Probe", options: declaring(init) });
    expect(() => checkAccessDeclared([probe])).toThrow(message);
  });
});

describe("each RPC's comment says in words what its option declares", () => {
  const ROOT = join(__dirname, "../..");
  const files: Record<string, string> = {
    "boxoffice.queue.v1.QueueService": "proto/boxoffice/queue/v1/queue_service.proto",
    "boxoffice.concert.v1.ConcertService": "proto/boxoffice/concert/v1/concert_service.proto",
    "boxoffice.reservation.v1.ReservationService": "proto/boxoffice/reservation/v1/reservation_service.proto",
    "boxoffice.wallet.v1.WalletService": "proto/boxoffice/wallet/v1/wallet_service.proto",
  };

  /** The "Access (...):" paragraph of the comment above `rpc <name>(`, as one line. */
  function accessWords(proto: string, rpc: string): string {
    const lines = proto.split("\n");
    const at = lines.findIndex((l) => l.startsWith(`  rpc ${rpc}(`));
    let top = at;
    while (lines[top - 1]?.startsWith("  //")) top--;
    const comment = lines.slice(top, at);
    const from = comment.indexOf("  // Access (boxoffice.options.v1.access):");
    const to = comment.indexOf("  // Errors:");
    expect({ rpc, from: from >= 0, before: to > from }).toEqual({ rpc, from: true, before: true });
    return comment
      .slice(from + 1, to)
      .map((l) => l.replace(/^ {2}\/\/\s*/, ""))
      .join(" ");
  }

  test.each(rpcs.map((r) => [r.name, r] as const))("%s", (_name, { short, method }) => {
    const words = accessWords(readFileSync(join(ROOT, files[method.parent.typeName]), "utf8"), short);
    const a = methodAccess(method);
    expect(words.includes(a.public ? "AUTH_PUBLIC" : "AUTH_USER")).toBe(true);
    expect(words.includes("QUEUE_TOKEN_REQUIRED")).toBe(a.queueToken);
    expect(words.includes("ACTIVE queue token")).toBe(a.queueToken);
    if (a.requiredScope) expect(words).toContain(`the ${a.requiredScope} scope (required_scope)`);
    else expect(words).not.toContain("required_scope");
    if (a.anyUserScope) expect(words).toContain(a.anyUserScope);
    expect(words.includes("any_user_scope")).toBe(a.anyUserScope !== undefined);
  });
});
