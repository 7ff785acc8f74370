/**
 * Builds @boxoffice/client for the browser: one minified ES module with its
 * dependencies inside (dist/boxoffice-client.js, for a page without a bundler;
 * a bundler-using app imports the package's source instead and gets the same
 * tree-shaken code). Prints its size minified and gzipped, and fails if
 * anything server-only got in.
 *
 *   npm run build -w @boxoffice/client              # build and print the size
 *   npm run build -w @boxoffice/client -- --compare # also the size with gen/'s protovalidate import
 *   ... -- --json                                   # the figures as JSON (the tests read this)
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { gzipSync } from "node:zlib";
import { build, type Metafile, type Plugin } from "esbuild";

const PACKAGE_DIR = join(__dirname, "..");
const ENTRY = join(PACKAGE_DIR, "src/index.ts");
export const BUNDLE_FILE = join(PACKAGE_DIR, "dist/boxoffice-client.js");

/** Packages that belong on the server: a browser bundle must contain none of them. */
export const SERVER_ONLY = [
  "@bufbuild/protovalidate",
  "@bufbuild/cel",
  "@connectrpc/connect-node",
  "@connectrpc/validate",
  "@grpc/grpc-js",
  "@mikro-orm",
  "ioredis",
  "pino",
  "jose",
];

export interface BundleReport {
  file: string | undefined;
  bytes: number;
  gzipBytes: number;
  /** npm packages in the bundle, with the bytes each contributes. */
  packages: Record<string, number>;
  /** Files of this repository in the bundle, relative to the package. */
  sources: string[];
}

/** Points the client's validate stub at protovalidate's real descriptor: the bundle gen/ would give. */
const realValidate: Plugin = {
  name: "real-protovalidate",
  setup(b) {
    b.onResolve({ filter: /validate-stub\/buf\/validate\/validate_pb\.js$/ }, (args) =>
      b.resolve("@bufbuild/protovalidate/gen/buf/validate/validate_pb.js", { kind: args.kind, resolveDir: args.resolveDir }),
    );
  },
};

export async function bundleClient(opts: { write: boolean; withProtovalidate?: boolean }): Promise<BundleReport> {
  const result = await build({
    entryPoints: [ENTRY],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    legalComments: "none",
    metafile: true,
    write: false,
    outfile: BUNDLE_FILE,
    plugins: opts.withProtovalidate ? [realValidate] : [],
    logLevel: "silent",
  });
  const out = result.outputFiles.find((f) => f.path.endsWith(".js"));
  if (!out) throw new Error("esbuild wrote no .js output");
  if (opts.write) {
    mkdirSync(dirname(BUNDLE_FILE), { recursive: true });
    writeFileSync(BUNDLE_FILE, out.contents);
  }
  const report: BundleReport = {
    file: opts.write ? relative(process.cwd(), BUNDLE_FILE) : undefined,
    bytes: out.contents.byteLength,
    gzipBytes: gzipSync(out.contents, { level: 9 }).byteLength,
    ...contents(result.metafile),
  };
  if (!opts.withProtovalidate) {
    const leaked = Object.keys(report.packages).filter((p) => SERVER_ONLY.some((s) => p === s || p.startsWith(`${s}/`)));
    if (leaked.length) throw new Error(`server-only packages in the browser bundle: ${leaked.join(", ")}`);
  }
  return report;
}

function contents(meta: Metafile): Pick<BundleReport, "packages" | "sources"> {
  const packages: Record<string, number> = {};
  const sources: string[] = [];
  const [output] = Object.values(meta.outputs);
  for (const [path, { bytesInOutput }] of Object.entries(output.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path);
    if (m) packages[m[1]] = (packages[m[1]] ?? 0) + bytesInOutput;
    else sources.push(relative(PACKAGE_DIR, join(process.cwd(), path)));
  }
  return { packages, sources };
}

const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;

async function main(): Promise<void> {
  const args = new Set(process.argv.slice(2));
  const client = await bundleClient({ write: true });
  const compared = args.has("--compare") ? await bundleClient({ write: false, withProtovalidate: true }) : undefined;
  if (args.has("--json")) {
    process.stdout.write(`${JSON.stringify({ client, withProtovalidate: compared })}\n`);
    return;
  }
  process.stdout.write(`${client.file}: ${kb(client.bytes)} minified, ${kb(client.gzipBytes)} gzip\n`);
  for (const [name, bytes] of Object.entries(client.packages).sort((a, b) => b[1] - a[1])) process.stdout.write(`  ${name.padEnd(28)} ${kb(bytes)}\n`);
  if (compared)
    process.stdout.write(
      `with gen/'s @bufbuild/protovalidate import instead: ${kb(compared.bytes)} minified, ${kb(compared.gzipBytes)} gzip ` +
        `(protovalidate ${kb(compared.packages["@bufbuild/protovalidate"] ?? 0)})\n`,
    );
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
