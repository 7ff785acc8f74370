/**
 * Stands in for protovalidate's generated `buf/validate/validate_pb` in the
 * browser client: packages/client/buf.gen.yaml points the generated imports
 * here instead of at `@bufbuild/protovalidate`.
 *
 * The service files import that descriptor only because their request fields
 * carry `(buf.validate.field)` options. A client needs a file of that name to
 * exist, not its ~95 KB of rule messages: the options then stay unparsed
 * unknown fields, which nothing in a client reads. The server enforces the
 * rules and answers a bad request with INVALID_ARGUMENT and its violations.
 */
import type { GenFile } from "@bufbuild/protobuf/codegenv2";
import { fileDesc } from "@bufbuild/protobuf/codegenv2";

/** FileDescriptorProto { name: "buf/validate/validate.proto", package: "buf.validate" }, nothing else. */
export const file_buf_validate_validate: GenFile = /*@__PURE__*/ fileDesc("ChtidWYvdmFsaWRhdGUvdmFsaWRhdGUucHJvdG8SDGJ1Zi52YWxpZGF0ZQ");
