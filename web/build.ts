/**
 * Builds the on-sale page into web/dist: app.js (the page and
 * @boxoffice/client, one minified ES module), app.css, index.html and a
 * default config.js (API on the page's own origin, auth mode asked of the
 * server). Prints the sizes.
 *
 *   npm run web:build            # then: npm run web
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
  rmSync(outDir, { recursive: true, force: true });
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
  for (const [name, bytes] of Object.entries(out)) if (!name.startsWith("styles.")) writeFileSync(join(outDir, name), bytes);

  const files: WebBuildReport["files"] = {};
  for (const name of ["index.html", "app.js", "app.css"]) files[name] = { bytes: out[name].byteLength, gzipBytes: gzipSync(out[name], { level: 9 }).byteLength };
  const sources: Record<string, number> = {};
  const js = Object.entries(result.metafile.outputs).find(([p]) => p.endsWith("app.js"))![1];
  for (const [path, { bytesInOutput }] of Object.entries(js.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path);
    const from = m ? m[1] : path.startsWith("packages/client/") ? "@boxoffice/client" : "web/src";
    sources[from] = (sources[from] ?? 0) + bytesInOutput;
  }
  return { dir: outDir, files, sources };
}

/** The page's config.js: `window.BOXOFFICE_CONFIG`, read by web/src/config.ts. */
export function configScript(config: { apiBaseUrl?: string; protocol?: string; authMode?: string }): string {
  return `window.BOXOFFICE_CONFIG = ${JSON.stringify(config)};\n`;
}

if (require.main === module) {
  buildWeb()
    .then((r) => {
      const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
      process.stdout.write(`built ${relative(process.cwd(), r.dir)}/\n`);
      for (const [name, f] of Object.entries(r.files)) process.stdout.write(`  ${name.padEnd(11)} ${kb(f.bytes).padStart(9)} minified ${kb(f.gzipBytes).padStart(8)} gzip\n`);
      process.stdout.write(`app.js by source:\n`);
      for (const [name, bytes] of Object.entries(r.sources).sort((a, b) => b[1] - a[1])) process.stdout.write(`  ${name.padEnd(26)} ${kb(bytes).padStart(9)}\n`);
    })
    .catch((err) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
}
