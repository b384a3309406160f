#!/usr/bin/env node
// CLI entry, runnable by node, `deno run --allow-read --allow-env` and bun.
// Parallel reads (probe, --io async, --direct) run on libuv's thread pool, sized once when it starts —
// before an ES module's body runs — so the size must come from the environment: re-run with it.
if (typeof process.versions.bun === 'undefined' && typeof globalThis.Deno === 'undefined' && !process.env.UV_THREADPOOL_SIZE &&
    (process.argv[2] === 'probe' || process.argv.some((a) => a === '--direct' || a === '--io=async' || a === 'async'))) {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, UV_THREADPOOL_SIZE: '64' } });
  process.exit(r.status ?? 1);
}
const { main } = await import('../dist/src/node/cli.js');
process.exitCode = await main(process.argv.slice(2));
