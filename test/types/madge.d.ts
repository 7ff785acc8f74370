/** The part of madge's API the import-cycle test uses (the package ships no types). */
declare module "madge" {
  interface MadgeConfig {
    fileExtensions?: string[];
    tsConfig?: string;
    baseDir?: string;
  }
  interface MadgeResult {
    /** Each cycle as the files on it, relative to the scanned folder. */
    circular(): string[][];
    /** Every file and the files it imports. */
    obj(): Record<string, string[]>;
    /** Imports madge could not resolve to a file. */
    warnings(): { skipped: string[] };
  }
  export default function madge(path: string | string[], config?: MadgeConfig): Promise<MadgeResult>;
}
