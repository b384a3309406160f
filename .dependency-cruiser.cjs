// Module-boundary rules for src/ (npm run check:deps; CI runs it from .ci/run).
//
// Layout they enforce:
//   src/core, src/io, src/format, src/predictor, src/gpu   portable: no node:* builtins, no src/node, no src/web
//   src/web                                                 browser: no node:* builtins, no src/node
//   src/node, src/index.ts                                  Node only: may use both
// and no import cycles anywhere in src/.
//
// Parsing: TypeScript 7 (this repo's compiler) has no JS compiler API, which dependency-cruiser's
// 'tsc' parser needs, so the sources are parsed with swc (@swc/core, a devDependency). Import
// specifiers use '.js' (NodeNext); dependency-cruiser's resolver maps './x.js' to './x.ts' when
// no .js file exists. Type-only imports count too (tsPreCompilationDeps), so a portable module
// may not even take a type from node:* or src/node, and a cycle through `import type` is a cycle.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No import cycles in src/ (type-only imports included).',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-node-builtins-outside-node',
      severity: 'error',
      comment: 'node:* builtins (and their bare names) only in src/node/ and src/index.ts.',
      from: { path: '^src/', pathNot: '^src/(node/|index\\.ts$)' },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'no-src-node-outside-node',
      severity: 'error',
      comment: 'src/node/ is imported only from src/node/ and src/index.ts.',
      from: { path: '^src/', pathNot: '^src/(node/|index\\.ts$)' },
      to: { path: '^src/node/' },
    },
    {
      name: 'no-web-from-portable',
      severity: 'error',
      comment: 'src/core, io, format, predictor and gpu run in Node and the browser: they do not import src/web/.',
      from: { path: '^src/(core|io|format|predictor|gpu)/' },
      to: { path: '^src/web/' },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'Every import from src/ resolves (an unresolved one would escape the rules above).',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    parser: 'swc',
    tsPreCompilationDeps: true,
    moduleSystems: ['es6', 'cjs'],
  },
};
