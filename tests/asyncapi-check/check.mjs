// Parses an AsyncAPI document with the official parser and prints its diagnostics as JSON:
// `{"parsed": bool, "diagnostics": [{"severity": "error"|"warning"|"info"|"hint", "code",
// "message", "path"}]}`. Reads the document from the file named by the first argument, or
// from standard input. Exits 0 whenever it could run the parser; the caller judges the result.
import { readFileSync } from 'node:fs';
import { Parser } from '@asyncapi/parser';

const SEVERITY = ['error', 'warning', 'info', 'hint'];

const source = process.argv[2] ? readFileSync(process.argv[2], 'utf8') : readFileSync(0, 'utf8');
const parser = new Parser();
const { document, diagnostics } = await parser.parse(source);
const out = {
  parsed: document !== undefined,
  diagnostics: diagnostics.map((d) => ({
    severity: SEVERITY[d.severity] ?? String(d.severity),
    code: String(d.code),
    message: d.message,
    path: d.path.join('/'),
  })),
};
process.stdout.write(JSON.stringify(out) + '\n');
