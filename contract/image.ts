/**
 * The contract as the kit knows it: a Buf image (FileDescriptorSet) and
 * nothing else. Services, messages, the ErrorReason enum, the access option
 * and each RPC's documented errors all come from it.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createFileRegistry, fromBinary, type DescEnum, type DescMessage, type DescMethod, type DescService, type FileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { parseDocumentedErrors, type DocumentedErrors } from "./documented-errors.js";

const REASON_ENUM = "boxoffice.error.v1.ErrorReason";
const REASON_PREFIX = "ERROR_REASON_";

export interface Image {
  registry: FileRegistry;
  /** Where the image came from, for the first line of output. */
  source: string;
  service(typeName: string): DescService;
  method(service: string, name: string): DescMethod;
  message(typeName: string): DescMessage;
  enumValue(enumName: string, valueName: string): number;
  /** The reason string sent for an ErrorReason value: its name without the prefix. Throws if the image has no such value. */
  reason(name: string): string;
  /** The errors an RPC's comment documents (empty when the image carries no comments). */
  documented(method: DescMethod): DocumentedErrors;
  /** Whether the image carries the comments the documented errors are read from. */
  hasComments: boolean;
  /** The boxoffice RPCs: every method of every service in the boxoffice.* packages. */
  rpcs(): DescMethod[];
}

/** The image at `path`, or one built now from the `proto/` next to this kit with `buf build`. */
export function loadImage(path: string | undefined): Image {
  if (path) return imageOf(readFileSync(path), resolve(path));
  const dir = mkdtempSync(join(tmpdir(), "boxoffice-contract-"));
  try {
    const out = join(dir, "boxoffice.binpb");
    execFileSync("npx", ["buf", "build", "-o", out], { cwd: resolve(__dirname, ".."), stdio: ["ignore", "ignore", "inherit"] });
    return imageOf(readFileSync(out), "buf build (proto/)");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function imageOf(bytes: Uint8Array, source: string): Image {
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes));
  const reasons = registry.getEnum(REASON_ENUM);
  if (!reasons) throw new Error(`the image has no ${REASON_ENUM}`);
  const documented = new Map<DescMethod, DocumentedErrors>();
  const hasComments = [...registry.files].some((f) => (f.proto.sourceCodeInfo?.location.length ?? 0) > 0);

  const service = (typeName: string): DescService => {
    const s = registry.getService(typeName);
    if (!s) throw new Error(`the image has no service ${typeName}`);
    return s;
  };
  return {
    registry,
    source,
    hasComments,
    service,
    method(serviceName, name) {
      const m = service(serviceName).methods.find((x) => x.name === name);
      if (!m) throw new Error(`the image has no ${serviceName}.${name}`);
      return m;
    },
    message(typeName) {
      const m = registry.getMessage(typeName);
      if (!m) throw new Error(`the image has no message ${typeName}`);
      return m;
    },
    enumValue(enumName, valueName) {
      const e = registry.getEnum(enumName);
      const v = e?.values.find((x) => x.name === valueName);
      if (!v) throw new Error(`the image has no ${enumName}.${valueName}`);
      return v.number;
    },
    reason(name) {
      return reasonName(reasons, name);
    },
    documented(method) {
      let d = documented.get(method);
      if (!d) {
        d = parseDocumentedErrors(commentOf(method), reasonNames(reasons));
        documented.set(method, d);
      }
      return d;
    },
    rpcs() {
      return [...registry].filter((t): t is DescService => t.kind === "service" && t.typeName.startsWith("boxoffice.")).flatMap((s) => s.methods);
    },
  };
}

function reasonName(reasons: DescEnum, name: string): string {
  const v = reasons.values.find((x) => x.name === REASON_PREFIX + name);
  if (!v) throw new Error(`${REASON_ENUM} has no ${REASON_PREFIX}${name}`);
  return v.name.slice(REASON_PREFIX.length);
}

const reasonNames = (reasons: DescEnum): Set<string> => new Set(reasons.values.filter((v) => v.number !== 0).map((v) => v.name.slice(REASON_PREFIX.length)));

/** The leading comment of an RPC, from its file's source info (path: service 6, index, method 2, index). */
function commentOf(method: DescMethod): string {
  const service = method.parent;
  const file = service.file;
  const path = [6, file.services.indexOf(service), 2, service.methods.indexOf(method)];
  const loc = file.proto.sourceCodeInfo?.location.find((l) => l.path.length === 4 && l.path.every((p, i) => p === path[i]));
  return loc?.leadingComments ?? "";
}
