/** A throwaway self-signed certificate for tests that speak TLS to the server. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestCertificate {
  dir: string;
  certFile: string;
  keyFile: string;
  /** The certificate (PEM): what a client trusts as its CA. */
  cert: Buffer;
  remove(): void;
}

/** A P-256 certificate for localhost and 127.0.0.1, valid one day, as PEM files in a temp dir (openssl CLI). */
export function makeCertificate(): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), "boxoffice-tls-"));
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost"].concat([
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-days",
      "1",
      "-keyout",
      keyFile,
      "-out",
      certFile,
    ]),
    { stdio: "ignore" },
  );
  return { dir, certFile, keyFile, cert: readFileSync(certFile), remove: () => rmSync(dir, { recursive: true, force: true }) };
}
