// The browser entry: `flashneuron/web` and `flashneuron/worker`, as a bundler resolves them through
// the package's exports, bundle for the browser with esbuild as they are — no stubs, no Node
// module anywhere in their graph.
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { ROOT } from './helpers/models.js';
import { cleanupTmp, tmpDir } from './helpers/hostile.js';

after(cleanupTmp);

describe('browser entry (flashneuron/web, flashneuron/worker)', function () {
  for (const [spec, name] of [['flashneuron/web', 'WorkerModel'], ['flashneuron/worker', null]]) {
    it(`${spec} bundles for the browser with nothing from Node`, async () => {
      const dir = tmpDir('webentry');
      mkdirSync(join(dir, 'node_modules'), { recursive: true });
      symlinkSync(ROOT, join(dir, 'node_modules', 'flashneuron'), 'dir');
      const entry = join(dir, 'page.js');
      writeFileSync(entry, name ? `import { ${name} } from '${spec}';\nglobalThis.x = ${name};\n` : `import '${spec}';\n`);
      const r = await build({ entryPoints: [entry], bundle: true, write: false, format: 'esm', platform: 'browser', logLevel: 'silent', absWorkingDir: dir });
      assert.deepEqual(r.errors, []);
      const code = r.outputFiles[0].text;
      assert.doesNotMatch(code, /from ["']node:|require\(["'](node:)?(fs|path|os|wasi|worker_threads)["']\)/);
      // The whole engine host travels in the worker's bundle (tokenizer, formats, core).
      if (name) assert.match(code, /WorkerModel/);
      else assert.ok(code.length > 100_000 && code.includes('resolveOptions'), `${code.length} bytes`);
    });
  }
});
