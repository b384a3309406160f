// The package as people install it: `npm pack` of this folder (as built: no scripts run), and a
// new project that installs the tarball without the network. npm resolves the package's
// dependencies to links into this repository's node_modules (their versions are the lockfile's,
// which the package pins), so no registry or npm cache is consulted.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './models.js';

const npm = (args, cwd) => execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false' } });

/** Packs the repository into `dest`: { file, size (bytes, gzipped), unpacked, files (paths in the package) }. */
export function pack(dest) {
  const [info] = JSON.parse(npm(['pack', '--ignore-scripts', '--json', '--pack-destination', dest], ROOT));
  return { file: join(dest, info.filename), size: info.size, unpacked: info.unpackedSize, files: info.files.map((f) => f.path) };
}

/** Makes `dir` a project (ESM) with the tarball installed offline; returns npm's output. */
export function installOffline(tgz, dir) {
  const { dependencies = {} } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const links = Object.fromEntries(Object.keys(dependencies).map((name) => [name, `file:${join(ROOT, 'node_modules', name)}`]));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'uses-flashneuron', private: true, type: 'module', dependencies: { ...links, flashneuron: `file:${tgz}` } }, null, 2));
  return npm(['install', '--offline', '--install-links=false', '--no-audit', '--no-fund', '--loglevel=error'], dir);
}
