import { getOption, hasOption, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { ConcertService } from "../../gen/boxoffice/concert/v1/concert_service_pb.js";
import { access, Auth, QueueToken } from "../../gen/boxoffice/options/v1/options_pb.js";
import { QueueService } from "../../gen/boxoffice/queue/v1/queue_service_pb.js";
import { ReservationService } from "../../gen/boxoffice/reservation/v1/reservation_service_pb.js";
import { WalletService } from "../../gen/boxoffice/wallet/v1/wallet_service_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { SCOPES } from "./auth.js";
import { REFLECTION_SERVICES } from "./reflection.js";

/**
 * What one RPC needs before any work is done for it, as its proto declares
 * in the `(boxoffice.options.v1.access)` method option.
 */
export interface MethodAccess {
  /** Callable without a bearer token (a token that is sent must still verify). */
  readonly public: boolean;
  /** Needs an ACTIVE queue token, the caller's, in `x-queue-token`. */
  readonly queueToken: boolean;
  /** A scope the caller must hold; undefined: none. */
  readonly requiredScope: string | undefined;
  /** The scope that lets a caller act for another user; undefined: nobody may. */
  readonly anyUserScope: string | undefined;
}

/** The services whose every RPC must declare its access. */
export const BOXOFFICE_SERVICES: readonly DescService[] = [QueueService, ConcertService, ReservationService, WalletService];

/**
 * gRPC health and reflection: their protos are upstream's (no option of ours
 * can be put on them), and load balancers and tools call them without
 * credentials, so they are public by name.
 */
export const INFRASTRUCTURE_SERVICES: ReadonlySet<string> = new Set([Health.typeName, ...REFLECTION_SERVICES]);

const INFRASTRUCTURE_ACCESS: MethodAccess = Object.freeze({ public: true, queueToken: false, requiredScope: undefined, anyUserScope: undefined });

const KNOWN_SCOPES: ReadonlySet<string> = new Set(Object.values(SCOPES));

const OPTION = `(${access.typeName})`;

export const procedureName = (service: string, method: string): string => `${service}/${method}`;

/** The access `method` declares, or why it declares none that the server can enforce. */
function readAccess(method: DescMethod): MethodAccess | string {
  if (INFRASTRUCTURE_SERVICES.has(method.parent.typeName)) return INFRASTRUCTURE_ACCESS;
  if (!hasOption(method, access)) return `declares no ${OPTION} option`;
  const a = getOption(method, access);
  if (a.auth !== Auth.PUBLIC && a.auth !== Auth.USER) return `${OPTION}.auth must be AUTH_PUBLIC or AUTH_USER`;
  if (a.queueToken !== QueueToken.NOT_REQUIRED && a.queueToken !== QueueToken.REQUIRED)
    return `${OPTION}.queue_token must be QUEUE_TOKEN_NOT_REQUIRED or QUEUE_TOKEN_REQUIRED`;
  const isPublic = a.auth === Auth.PUBLIC;
  // A queue token or a scope means nothing without a verified caller to hold it: such a declaration is a mistake, not a policy.
  if (isPublic && (a.queueToken === QueueToken.REQUIRED || a.requiredScope || a.anyUserScope))
    return `${OPTION} is AUTH_PUBLIC, so it cannot require a queue token or name a scope`;
  for (const scope of [a.requiredScope, a.anyUserScope])
    if (scope && !KNOWN_SCOPES.has(scope)) return `${OPTION} names the scope "${scope}", which the server does not know (${[...KNOWN_SCOPES].join(", ")})`;
  return Object.freeze({
    public: isPublic,
    queueToken: a.queueToken === QueueToken.REQUIRED,
    requiredScope: a.requiredScope || undefined,
    anyUserScope: a.anyUserScope || undefined,
  });
}

/**
 * Fails fast (at start) unless every RPC of `services` declares an access
 * the server can enforce. An RPC without one is refused, never treated as
 * public. The error names every offending RPC.
 */
export function checkAccessDeclared(services: readonly DescService[] = BOXOFFICE_SERVICES): void {
  const problems: string[] = [];
  for (const service of services)
    for (const method of service.methods) {
      const a = readAccess(method);
      if (typeof a === "string") problems.push(`${procedureName(service.typeName, method.name)} ${a}`);
    }
  if (problems.length)
    throw new Error(`every RPC must declare its access in proto/boxoffice/options/v1/options.proto's ${OPTION} method option:\n  ${problems.join("\n  ")}`);
}

const byName = new Map<string, MethodAccess>();

function declaredTable(): ReadonlyMap<string, MethodAccess> {
  if (byName.size === 0) {
    checkAccessDeclared();
    for (const service of BOXOFFICE_SERVICES)
      for (const m of service.methods) byName.set(procedureName(service.typeName, m.name), readAccess(m) as MethodAccess);
  }
  return byName;
}

/**
 * The access `method` declares. Throws for a method that declares none: a
 * service served but left out of BOXOFFICE_SERVICES is a wiring bug, refused
 * rather than let through.
 */
export function methodAccess(method: DescMethod): MethodAccess {
  const found = accessOf(method.parent.typeName, method.name);
  if (found) return found;
  const a = readAccess(method);
  if (typeof a === "string") throw new Error(`${procedureName(method.parent.typeName, method.name)} ${a}`);
  return a;
}

/** The access an RPC declares, by service type name and method name; undefined for an RPC this server does not know. */
export function accessOf(service: string, method: string): MethodAccess | undefined {
  if (INFRASTRUCTURE_SERVICES.has(service)) return INFRASTRUCTURE_ACCESS;
  return declaredTable().get(procedureName(service, method));
}

/** "service/Method" of every RPC that needs an ACTIVE queue token. */
export function gatedProcedures(): ReadonlySet<string> {
  return new Set([...declaredTable()].filter(([, a]) => a.queueToken).map(([name]) => name));
}
