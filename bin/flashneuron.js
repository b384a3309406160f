#!/usr/bin/env node
// CLI entry, runnable by node, `deno run -A` and bun.
// node:wasi prints an ExperimentalWarning on every run; it says nothing a user can act on.
const emitWarning = process.emitWarning;
process.emitWarning = function (warning, ...rest) {
  const type = typeof rest[0] === 'string' ? rest[0] : rest[0]?.type;
  if (type === 'ExperimentalWarning' && String(warning).includes('WASI')) return;
  return emitWarning.call(process, warning, ...rest);
};
const { main } = await import('../dist/src/cli.js');
process.exitCode = await main(process.argv.slice(2));
