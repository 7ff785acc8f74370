/** What a refusal must look like: its code, its ErrorInfo reason, and both documented for the RPC. */
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, type ConnectError } from "@connectrpc/connect";
import type { Image } from "./image.js";
import type { Msg } from "./session.js";

const DOMAIN = "boxoffice";

/** Code.InvalidArgument -> "INVALID_ARGUMENT", the spelling of the protos' comments. */
export const codeName = (code: Code): string => Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();

export interface ErrorInfo {
  reason: string;
  domain: string;
  metadata: Record<string, string>;
}

export function errorInfoOf(image: Image, err: ConnectError): ErrorInfo | undefined {
  return err.findDetails(image.message("google.rpc.ErrorInfo"))[0] as unknown as ErrorInfo | undefined;
}

export function detailsOf(image: Image, err: ConnectError, typeName: string): Msg[] {
  return err.findDetails(image.message(typeName)) as Msg[];
}

const describe = (err: ConnectError, info?: ErrorInfo) => `${codeName(err.code)}${info ? ` ${info.reason}` : ""}: ${err.rawMessage}`;

/**
 * Asserts `err` is `code` with the ErrorInfo reason `reasonName` (looked up in
 * the image's ErrorReason), and that the RPC's comment documents that pair.
 * Returns the ErrorInfo for further checks of its metadata.
 */
export function expectRefusal(image: Image, method: DescMethod, err: ConnectError, code: Code, reasonName: string): ErrorInfo {
  const reason = image.reason(reasonName);
  const info = errorInfoOf(image, err);
  if (err.code !== code || info?.reason !== reason) throw new Error(`expected ${codeName(code)} ${reason}, got ${describe(err, info)}`);
  if (info.domain !== DOMAIN) throw new Error(`ErrorInfo domain is ${JSON.stringify(info.domain)}, not ${DOMAIN}`);
  expectDocumented(image, method, codeName(code), reason);
  return info;
}

/** INVALID_ARGUMENT from protovalidate: a buf.validate.Violations detail naming `field`. */
export function expectViolation(image: Image, method: DescMethod, err: ConnectError, field: string): void {
  if (err.code !== Code.InvalidArgument) throw new Error(`expected INVALID_ARGUMENT, got ${describe(err, errorInfoOf(image, err))}`);
  const violations = detailsOf(image, err, "buf.validate.Violations").flatMap((d) => d.violations as Msg[]);
  const fields = violations.map((v) => (v.field?.elements as Msg[] | undefined)?.map((e) => e.fieldName).join(".") ?? "");
  if (!fields.includes(field)) throw new Error(`expected a violation of ${field}, got [${fields.join(", ")}]`);
  expectDocumented(image, method, "INVALID_ARGUMENT", undefined);
}

export function expectDocumented(image: Image, method: DescMethod, code: string, reason: string | undefined): void {
  if (!image.hasComments) return; // an image built with --exclude-source-info: nothing to hold the answer to
  const doc = image.documented(method);
  const ok = reason === undefined ? doc.violations.has(code) : doc.reasons.get(code)?.has(reason);
  if (!ok) throw new Error(`${method.name} answered ${code}${reason ? ` ${reason}` : ""}, which its comment does not document`);
}
