import { create, createRegistry, toBinary, type DescExtension, type DescFile, type Registry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** The answer to one reflection request, shaped like both v1 and v1alpha. */
type Answer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

type Question = v1.ServerReflectionRequest["messageRequest"] | v1alpha.ServerReflectionRequest["messageRequest"];

const NOT_FOUND = 5;
const INVALID_ARGUMENT = 3;

/**
 * grpc.reflection over the descriptors compiled into gen/, so buf curl, grpcurl
 * and Postman can call the server with no .proto files at hand.
 */
export class ReflectionIndex {
  private readonly files = new Map<string, DescFile>();
  private readonly registry: Registry;

  constructor(
    files: DescFile[],
    private readonly serviceNames: string[],
  ) {
    // Keyed by the proto file name ("a/b.proto"): DescFile.name drops the ".proto".
    const visit = (f: DescFile) => {
      if (this.files.has(f.proto.name)) return;
      this.files.set(f.proto.name, f);
      f.dependencies.forEach(visit);
    };
    files.forEach(visit);
    this.registry = createRegistry(...this.files.values());
  }

  answer(q: Question): Answer {
    switch (q.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: this.serviceNames.map((name) => ({ name })) } };
      case "fileByFilename": {
        const file = this.files.get(q.value);
        return file ? this.filesOf(file) : notFound(`file "${q.value}"`);
      }
      case "fileContainingSymbol": {
        const file = this.fileOfSymbol(q.value);
        return file ? this.filesOf(file) : notFound(`symbol "${q.value}"`);
      }
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = q.value;
        const ext = this.extensionsOf(containingType).find((x) => x.number === extensionNumber);
        return ext ? this.filesOf(ext.file) : notFound(`extension ${containingType}:${extensionNumber}`);
      }
      case "allExtensionNumbersOfType": {
        if (!this.registry.getMessage(q.value)) return notFound(`type "${q.value}"`);
        const extensionNumber = this.extensionsOf(q.value).map((x) => x.number);
        return { case: "allExtensionNumbersResponse", value: { baseTypeName: q.value, extensionNumber } };
      }
      default:
        return { case: "errorResponse", value: { errorCode: INVALID_ARGUMENT, errorMessage: "unsupported reflection request" } };
    }
  }

  private extensionsOf(typeName: string): DescExtension[] {
    const found: DescExtension[] = [];
    for (const t of this.registry) if (t.kind === "extension" && t.extendee.typeName === typeName) found.push(t);
    return found;
  }

  /** A symbol may name a type, a service, a method or a field: walk up until a declaration matches. */
  private fileOfSymbol(symbol: string): DescFile | undefined {
    for (let name = symbol; name; name = name.slice(0, Math.max(0, name.lastIndexOf(".")))) {
      const found = this.registry.get(name);
      if (found) return found.file;
      if (!name.includes(".")) break;
    }
    return undefined;
  }

  /** The file and everything it imports, transitively: clients need the whole closure. */
  private filesOf(file: DescFile): Answer {
    const seen = new Map<string, DescFile>();
    const visit = (f: DescFile) => {
      if (seen.has(f.name)) return;
      seen.set(f.name, f);
      f.dependencies.forEach(visit);
    };
    visit(file);
    const fileDescriptorProto = [...seen.values()].map((f) => toBinary(FileDescriptorProtoSchema, f.proto));
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto } };
  }
}

function notFound(what: string): Answer {
  return { case: "errorResponse", value: { errorCode: NOT_FOUND, errorMessage: `${what} not found` } };
}

export function registerReflection(router: ConnectRouter, index: ReflectionIndex): void {
  router.service(v1.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        yield create(v1.ServerReflectionResponseSchema, {
          validHost: req.host,
          originalRequest: req,
          messageResponse: index.answer(req.messageRequest),
        });
      }
    },
  });
  router.service(v1alpha.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        yield create(v1alpha.ServerReflectionResponseSchema, {
          validHost: req.host,
          originalRequest: req,
          messageResponse: index.answer(req.messageRequest),
        });
      }
    },
  });
}

export const REFLECTION_SERVICES = [v1.ServerReflection.typeName, v1alpha.ServerReflection.typeName];
