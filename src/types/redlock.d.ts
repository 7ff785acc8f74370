// redlock 5's package.json has `exports` without a `types` condition, so
// NodeNext resolution finds no types for "redlock". tsconfig `paths` points
// the type checker here; at run time there is no .ts/.js file at this path,
// so tsx falls back to the package itself (pointing `paths` straight at the
// package's .d.ts made tsx load that .d.ts as code).
export * from "../../node_modules/redlock/dist/index";
export { default } from "../../node_modules/redlock/dist/index";
