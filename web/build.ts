/**
 * Builds the on-sale page into web/dist: app.js (the page and
 * @boxoffice/client, one minified ES module), app.css, index.html and a
 * default config.js (API on the page's own origin, auth mode asked of the
 * server). Prints the sizes.
 *
 *   npm run web:build            # then: npm run web (or npm start: the API serves it at /)
 *   tsx web/build.ts --if-stale  # only when web/dist is missing or older than its sources
 */
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

export const WEB_DIR = __dirname;
export const DIST_DIR = join(WEB_DIR, "dist");

export interface WebBuildReport {
  dir: string;
  files: Record<string, { bytes: number; gzipBytes: number }>;
  /** Bytes of app.js by where they come from: the page, the client package, each npm package. */
  sources: Record<string, number>;
}

export async function buildWeb(outDir: string = DIST_DIR): Promise<WebBuildReport> {
  const result = await build({
    entryPoints: { app: join(WEB_DIR, "src/main.ts"), styles: join(WEB_DIR, "src/styles.css") },
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022", "chrome110", "firefox110", "safari16"],
    minify: true,
    sourcemap: "linked",
    legalComments: "none",
    metafile: true,
    write: false,
    outdir: outDir,
    logLevel: "silent",
  });
  // No emptying of outDir first: a server may be serving it right now (npm
  // start serves web/dist). Every file is replaced whole, by a rename.
  mkdirSync(outDir, { recursive: true });
  const out: Record<string, Uint8Array> = {};
  for (const f of result.outputFiles) {
    const name = relative(outDir, f.path).replace(/^styles\.css/, "app.css");
    out[name] = f.contents;
  }
  const hash = (name: string) => createHash("sha256").update(out[name]).digest("hex").slice(0, 10);
  out["index.html"] = Buffer.from(
    readFileSync(join(WEB_DIR, "index.html"), "utf8").replace("%HASH_JS%", hash("app.js")).replace("%HASH_CSS%", hash("app.css")),
  );
  out["config.js"] = Buffer.from(configScript({}));
  // index.html last: its mtime is the build's (see isStale).
  const names = Object.keys(out).filter((name) => !name.startsWith("styles.") && name !== "index.html");
  for (const name of [...names, "index.html"]) {
    const tmp = join(outDir, `.${name}.${process.pid}.tmp`);
    writeFileSync(tmp, out[name]);
    renameSync(tmp, join(outDir, name));
  }

  const files: WebBuildReport["files"] = {};
  for (const name of ["index.html", "app.js", "app.css"])
    files[name] = { bytes: out[name].byteLength, gzipBytes: gzipSync(out[name], { level: 9 }).byteLength };
  const sources: Record<string, number> = {};
  const js = Object.entries(result.metafile.outputs).find(([p]) => p.endsWith("app.js"))?.[1];
  if (!js) throw new Error("esbuild's metafile lists no app.js output");
  for (const [path, { bytesInOutput }] of Object.entries(js.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path);
    const from = m ? m[1] : path.startsWith("packages/client/") ? "@boxoffice/client" : "web/src";
    sources[from] = (sources[from] ?? 0) + bytesInOutput;
  }
  return { dir: outDir, files, sources };
}

/** What the page is built from: its sources, the client package's, and the dependency tree. */
const INPUTS = [
  join(WEB_DIR, "src"),
  join(WEB_DIR, "index.html"),
  join(WEB_DIR, "build.ts"),
  join(WEB_DIR, "../packages/client/src"),
  join(WEB_DIR, "../package-lock.json"),
];

/** Whether `outDir` is missing a build or is older than any of its inputs. */
export function isStale(outDir: string = DIST_DIR): boolean {
  let built: number;
  try {
    built = statSync(join(outDir, "index.html")).mtimeMs;
  } catch {
    return true;
  }
  const newest = (path: string): number => {
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st) return 0;
    if (!st.isDirectory()) return st.mtimeMs;
    return Math.max(st.mtimeMs, ...readdirSync(path).map((name) => newest(join(path, name))));
  };
  return INPUTS.some((input) => newest(input) > built);
}

/** The page's config.js: `window.BOXOFFICE_CONFIG`, read by web/src/config.ts. */
export function configScript(config: { apiBaseUrl?: string; protocol?: string; authMode?: string }): string {
  return `window.BOXOFFICE_CONFIG = ${JSON.stringify(config)};\n`;
}

if (require.main === module) {
  // --if-stale (npm start's prestart): nothing to do, and nothing printed, when web/dist is up to date.
  if (process.argv.includes("--if-stale") && !isStale()) process.exit(0);
  buildWeb()
    .then((r) => {
      const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
      process.stdout.write(`built ${relative(process.cwd(), r.dir)}/\n`);
      for (const [name, f] of Object.entries(r.files))
        process.stdout.write(`  ${name.padEnd(11)} ${kb(f.bytes).padStart(9)} minified ${kb(f.gzipBytes).padStart(8)} gzip\n`);
      process.stdout.write(`app.js by source:\n`);
      for (const [name, bytes] of Object.entries(r.sources).sort((a, b) => b[1] - a[1]))
        process.stdout.write(`  ${name.padEnd(26)} ${kb(bytes).padStart(9)}\n`);
    })
    .catch((err) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
}
