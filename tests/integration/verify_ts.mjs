// Runs labextension/src/verify.ts under Node: transpiled by the labextension's own TypeScript,
// then called as asked on stdin. Usage: node verify_ts.mjs VERIFY_TS TYPESCRIPT_DIR < calls.json
// Each call is {"fn", "args"}; an argument {"hex": h} is passed as bytes, {"note": text} as
// parseNote(text). Prints one {"value"} or {"error"} per call; bytes come back as {"hex"}.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const [source, typescript] = process.argv.slice(2);
const ts = createRequire(import.meta.url)(typescript);
const { outputText } = ts.transpileModule(readFileSync(source, 'utf8'), {
  compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 }
});
const verify = await import(
  'data:text/javascript;base64,' + Buffer.from(outputText).toString('base64')
);

const toHex = bytes => Buffer.from(bytes).toString('hex');
const decode = v =>
  Array.isArray(v) ? v.map(decode)
  : v && typeof v === 'object' && 'hex' in v ? Uint8Array.from(Buffer.from(v.hex, 'hex'))
  : v && typeof v === 'object' && 'note' in v ? verify.parseNote(v.note)
  : v;
const encode = v =>
  v instanceof Uint8Array ? { hex: toHex(v) }
  : Array.isArray(v) ? v.map(encode)
  : v;

const out = [];
for (const { fn, args } of JSON.parse(readFileSync(0, 'utf8'))) {
  try {
    out.push({ value: encode(await verify[fn](...args.map(decode))) });
  } catch (error) {
    out.push({ error: String(error) });
  }
}
process.stdout.write(JSON.stringify(out));
