export default async function globalTeardown(): Promise<void> {
  const services = globalThis.__testServices;
  if (!services) return;
  globalThis.__testServices = undefined;
  await services.redis.stop();
  services.pg.stop();
}
