/**
 * One flag parser for every bench program, on node:util's `parseArgs`:
 * `--users 8` and `--users=8` alike, lists as comma lists (`--clients 8,32`),
 * `--help` (or `-h`) prints the program's usage, and an unknown flag or a bad
 * value stops before anything starts, with the usage (exit code 2).
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

type OptionsConfig = NonNullable<ParseArgsConfig["options"]>;
/** The flags of `O` that take a value. */
type ValueFlag<O extends OptionsConfig> = { [K in keyof O]: O[K]["type"] extends "string" ? K : never }[keyof O] & string;

export interface Flags<V, O extends OptionsConfig> {
  values: V;
  positionals: string[];
  /** A whole number in `min..max`; `fallback` when the flag is absent. */
  int(name: ValueFlag<O>, fallback: number, min?: number, max?: number): number;
  /** A comma list of whole numbers in `min..max`; `fallback` when the flag is absent. */
  intList(name: ValueFlag<O>, fallback: number[], min?: number, max?: number): number[];
  /** One of `choices`; `fallback` when the flag is absent. */
  oneOf<C extends string>(name: ValueFlag<O>, choices: readonly C[], fallback: C): C;
}

function stop(usage: string, message: string): never {
  console.error(`${message}\n\n${usage}`);
  process.exit(2);
}

export function parseFlags<const O extends OptionsConfig>(usage: string, options: O, o: { positionals?: boolean; args?: string[] } = {}) {
  const config = {
    args: o.args ?? process.argv.slice(2),
    options: { ...options, help: { type: "boolean", short: "h" } } as O & { help: { type: "boolean"; short: "h" } },
    strict: true,
    allowPositionals: o.positionals ?? false,
  } as const;
  let parsed: ReturnType<typeof parseArgs<typeof config>>;
  try {
    parsed = parseArgs(config);
  } catch (err) {
    stop(usage, err instanceof Error ? err.message : String(err));
  }
  if ((parsed.values as { help?: boolean }).help) {
    console.log(usage);
    process.exit(0);
  }
  const text = (name: string): string | undefined => {
    const v: unknown = (parsed.values as Record<string, unknown>)[name];
    return typeof v === "string" ? v : undefined;
  };
  const whole = (name: string, s: string, min: number, max: number): number => {
    const n = Number(s);
    const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in ${min}..${max}`;
    if (s.trim() === "" || !Number.isInteger(n) || n < min || n > max) stop(usage, `--${name} must be a whole number ${range}, not "${s}"`);
    return n;
  };
  const flags: Flags<typeof parsed.values, O> = {
    values: parsed.values,
    positionals: parsed.positionals,
    int(name, fallback, min = 1, max = Number.MAX_SAFE_INTEGER) {
      const s = text(name);
      return s === undefined ? fallback : whole(name, s, min, max);
    },
    intList(name, fallback, min = 1, max = Number.MAX_SAFE_INTEGER) {
      const s = text(name);
      return s === undefined ? fallback : s.split(",").map((part) => whole(name, part.trim(), min, max));
    },
    oneOf(name, choices, fallback) {
      const s = text(name);
      if (s === undefined) return fallback;
      const choice = choices.find((c) => c === s);
      return choice ?? stop(usage, `--${name} must be one of ${choices.join(", ")}, not "${s}"`);
    },
  };
  return flags;
}
