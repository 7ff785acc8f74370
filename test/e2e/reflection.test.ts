/**
 * grpc.reflection v1 and v1alpha, asked by a grpc-js bidi client and by
 * `buf curl`, the command-line client the README tells people to use.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { createFileRegistry, fromBinary, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb";
import { WalletService } from "../../gen/boxoffice/wallet/v1/wallet_service_pb";
import { Health } from "../../gen/grpc/health/v1/health_pb";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb";
import { createTestDatabase, startTestServer, type TestDatabase, type TestServer } from "../harness";
import { bidiStream, grpc, grpcJsClient } from "./grpc-js";

const SERVED: DescService[] = [QueueService, ConcertService, ReservationService, WalletService, Health, v1.ServerReflection, v1alpha.ServerReflection];

let db: TestDatabase;
let s: TestServer;
let client: grpc.Client;

beforeAll(async () => {
  db = await createTestDatabase();
  s = await startTestServer({ DATABASE_URL: db.url });
  client = grpcJsClient(s.port);
});

afterAll(async () => {
  client?.close();
  await s?.stop();
  await db?.drop();
});

type Question = v1.ServerReflectionRequest["messageRequest"];
type Answer = v1.ServerReflectionResponse["messageResponse"];

/** One reflection stream: sends every question, half-closes, returns the answers in order. */
async function ask(version: "v1" | "v1alpha", questions: Question[]): Promise<Answer[]> {
  const method = version === "v1" ? v1.ServerReflection.method.serverReflectionInfo : v1alpha.ServerReflection.method.serverReflectionInfo;
  // v1 and v1alpha are the same messages under two package names.
  const call = bidiStream(client, method as typeof v1.ServerReflection.method.serverReflectionInfo);
  const answers: Answer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    call.on("data", (res: v1.ServerReflectionResponse) => answers.push(res.messageResponse));
    call.on("error", reject);
    call.on("end", resolve);
  });
  for (const messageRequest of questions) call.write({ host: "", messageRequest });
  call.end();
  await done;
  return answers;
}

function descriptorsOf(answer: Answer) {
  if (answer.case !== "fileDescriptorResponse") throw new Error(`expected file descriptors, got ${answer.case}`);
  return answer.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
}

describe.each(["v1", "v1alpha"] as const)("grpc.reflection.%s", (version) => {
  test("list_services names the four API services, health and both reflection services", async () => {
    const [answer] = await ask(version, [{ case: "listServices", value: "" }]);
    expect(answer.case).toBe("listServicesResponse");
    const names = answer.case === "listServicesResponse" ? answer.value.service.map((x) => x.name) : [];
    expect(names.sort()).toEqual(SERVED.map((d) => d.typeName).sort());
  });

  test("file_containing_symbol returns the file with its imports, and they parse into a complete registry", async () => {
    const [byService, byMethod] = await ask(version, [
      { case: "fileContainingSymbol", value: ConcertService.typeName },
      { case: "fileContainingSymbol", value: `${ConcertService.typeName}.ListAvailableSeats` },
    ]);
    const files = descriptorsOf(byService);
    expect(files.map((f) => f.name)).toEqual(
      expect.arrayContaining([
        "boxoffice/concert/v1/concert_service.proto",
        "boxoffice/concert/v1/concert.proto",
        "buf/validate/validate.proto",
        "google/protobuf/timestamp.proto",
        "google/protobuf/descriptor.proto",
      ]),
    );
    // createFileRegistry throws on a missing import: the closure is complete.
    const byName = new Map(files.map((f) => [f.name, f]));
    const registry = createFileRegistry(byName.get("boxoffice/concert/v1/concert_service.proto")!, (name) => byName.get(name));
    const service = registry.getService(ConcertService.typeName);
    expect(service?.methods.map((m) => m.name)).toEqual(["ListConcerts", "ListAvailableDates", "ListAvailableSeats"]);
    expect(registry.getMessage("boxoffice.concert.v1.ListAvailableSeatsRequest")?.fields.map((f) => f.name)).toEqual(["concert_id", "date"]);

    expect(descriptorsOf(byMethod)[0].name).toBe("boxoffice/concert/v1/concert_service.proto");
  });

  test("file_by_filename, and NOT_FOUND for what does not exist", async () => {
    const [file, unknownSymbol, unknownFile] = await ask(version, [
      { case: "fileByFilename", value: "boxoffice/queue/v1/queue.proto" },
      { case: "fileContainingSymbol", value: "boxoffice.nope.v1.NopeService" },
      { case: "fileByFilename", value: "nope.proto" },
    ]);
    expect(descriptorsOf(file)[0].messageType.map((m) => m.name)).toContain("QueueTicket");
    for (const answer of [unknownSymbol, unknownFile]) {
      expect(answer.case).toBe("errorResponse");
      expect(answer.case === "errorResponse" && answer.value.errorCode).toBe(grpc.status.NOT_FOUND);
    }
  });
});

test("`buf curl --list-methods` lists every method of every service, with no proto files at hand", async () => {
  const { stdout } = await promisify(execFile)(
    "node_modules/.bin/buf",
    ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-methods", s.baseUrl],
    { timeout: 30_000 },
  );
  const expected = SERVED.flatMap((svc) => svc.methods.map((m) => `${svc.typeName}/${m.name}`));
  expect(stdout.trim().split("\n").sort()).toEqual(expected.sort());
});
