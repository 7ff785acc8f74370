import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, MethodImpl, ServiceImpl } from "@connectrpc/connect";
import type { RegisteredService } from "./grpc-adapter.js";

/**
 * Runs route registrars against a router that only records what they
 * register, so the one set of implementations can be handed to both stacks:
 * connect-node (Connect, gRPC-Web) and grpc-js (gRPC).
 */
export function captureServices(register: (router: ConnectRouter) => void): RegisteredService[] {
  const services: RegisteredService[] = [];
  const byName = new Map<string, RegisteredService>();
  const router: ConnectRouter = {
    handlers: [],
    service(service: DescService, impl: Partial<ServiceImpl<DescService>>) {
      const entry = { service, impl: { ...impl } };
      byName.set(service.typeName, entry);
      services.push(entry);
      return this;
    },
    rpc<M extends DescMethod>(method: M, impl: MethodImpl<M>) {
      let entry = byName.get(method.parent.typeName);
      if (!entry) {
        entry = { service: method.parent, impl: {} };
        byName.set(method.parent.typeName, entry);
        services.push(entry);
      }
      (entry.impl as Record<string, unknown>)[method.localName] = impl;
      return this;
    },
  };
  register(router);
  return services;
}

/** Registers recorded services on a real router. */
export function replayServices(services: RegisteredService[], router: ConnectRouter): void {
  for (const { service, impl } of services) router.service(service, impl);
}
