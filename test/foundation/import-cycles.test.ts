/**
 * Imports point one way (rpc and routes -> modules -> platform; payment ->
 * reservation, wallet): a cycle means two files can no longer change or load
 * apart. Type-only imports count too, as they couple the files all the same.
 * `npm run check:cycles` runs the same check from the command line.
 */
import path from "node:path";
import madge from "madge";

const root = path.resolve(__dirname, "../..");

test("src/ has no import cycles", async () => {
  const graph = await madge(path.join(root, "src"), { fileExtensions: ["ts"], tsConfig: path.join(root, "tsconfig.json") });
  // The check only means something if the imports were followed: ".js" specifiers resolved to the .ts sources.
  expect(graph.warnings().skipped).toEqual([]);
  expect(graph.obj()["deps.ts"]).toEqual(expect.arrayContaining(["config.ts", "platform/db/database.ts"]));
  expect(graph.circular()).toEqual([]);
}, 60_000);
