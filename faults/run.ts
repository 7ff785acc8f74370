/**
 * The fault suite: a two-instance deployment over real PostgreSQL and three
 * Redis nodes, under load from separate processes, broken one way per
 * scenario. Prints a table and writes JSON (docs/faults.md explains it).
 *
 *   npm run faults                          every scenario, full length
 *   npm run faults -- --quick               every scenario, short
 *   npm run faults -- --scenario NAME       one scenario (repeatable)
 *   npm run faults -- --env NAME=value      extra server environment, e.g. QUEUE_TOKEN_SECRETS (repeatable)
 *   npm run faults -- --out DIR             where JSON and logs go (default faults/results/<time>)
 *
 * Exits 1 when a scenario broke an invariant, lost data, did not recover by
 * itself, or could not run; 0 otherwise.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { passed, printReport } from "./report";
import { abortSuite, runSuite, scenarioNames } from "./suite";

interface Args {
  quick: boolean;
  scenarios: string[];
  out?: string;
  env: Record<string, string>;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, scenarios: [], env: {} };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--quick") args.quick = true;
    else if (a === "--scenario") args.scenarios.push(value());
    else if (a === "--out") args.out = value();
    else if (a === "--env") {
      const [k, ...v] = value().split("=");
      if (!/^[A-Z][A-Z0-9_]*$/.test(k) || !v.length) throw new Error(`--env wants NAME=value, got ${k}`);
      args.env[k] = v.join("=");
    } else if (a === "--help") {
      console.log(`usage: npm run faults -- [--quick] [--scenario NAME]... [--env NAME=value]... [--out DIR]\nscenarios: ${scenarioNames().join(", ")}`);
      process.exit(0);
    } else throw new Error(`unknown option ${a} (try --help)`);
  }
  return args;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  for (const signal of ["SIGINT", "SIGTERM"] as const)
    process.once(signal, () => {
      console.error(`\n${signal}: stopping everything the suite started`);
      abortSuite();
      process.exit(130);
    });
  const outDir = args.out ?? join(__dirname, "results", new Date().toISOString().replace(/[:.]/g, "-"));
  const report = await runSuite({ quick: args.quick, scenarios: args.scenarios, outDir, serverEnv: args.env });
  printReport(report);
  const file = join(outDir, "faults.json");
  writeFileSync(file, JSON.stringify(report, null, 2));
  console.log(`JSON: ${file}`);
  process.exit(report.scenarios.every(passed) ? 0 : 1);
}

main().catch((err) => {
  console.error(err);
  process.exit(2);
});
