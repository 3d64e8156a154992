// Validate an AsyncAPI document with the official parser (@asyncapi/parser, pinned in
// package-lock.json). Prints every diagnostic as JSON lines; exit 1 on any error.
//   node tools/asyncapi/validate.mjs asyncapi.yaml
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const path = process.argv[2];
if (!path) {
  console.error("usage: node validate.mjs FILE");
  process.exit(2);
}
const parser = new Parser();
const { document, diagnostics } = await parser.parse(await readFile(path, "utf8"), {
  source: path,
});
let errors = 0;
for (const d of diagnostics) {
  if (d.severity === DiagnosticSeverity.Error) errors += 1;
  console.log(JSON.stringify({ severity: d.severity, code: d.code, message: d.message, path: d.path }));
}
if (document === undefined || errors > 0) {
  console.error(`${path}: ${errors} error(s)`);
  process.exit(1);
}
console.error(`${path}: valid AsyncAPI ${document.version()}`);
