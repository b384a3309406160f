// A fixed-seed fuzz corpus (scripts/fuzz): mutated images, predictors, Hugging Face folders,
// tokenizers, GGUF files and command lines, each run through the CLI in a child process. The goal
// for every format: no hang, no crash, no garbage — each case either gives the reference output,
// a different output only where the mutation makes another valid input, or one clear error line.
// A failure lists each case with its mutation, what happened and the command that reproduces it.
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { FAILURES, runFuzz, table } from '../scripts/fuzz/index.js';
import { TARGETS } from '../scripts/fuzz/targets.js';

const SEED = 20261206;
const CASES = 200;

describe(`fuzz corpus (seed ${SEED}, ${CASES} cases)`, function () {
  this.timeout(600000);
  let report;
  before(async () => {
    report = await runFuzz({ seed: SEED, cases: CASES, jobs: availableParallelism(), out: null });
    console.log(`      ${report.seconds} s, ${report.jobs} jobs\n${table(report.summary).replace(/^/gm, '      ')}`);
  });

  it('covers every format', () => {
    for (const t of TARGETS) assert.ok(Object.values(report.summary[t.name]).some((n) => n > 0), `no case for ${t.name}`);
  });

  for (const t of TARGETS) {
    it(`${t.name}: no hang, no crash, no garbage`, () => {
      const bad = report.failures.filter((f) => f.target === t.name && FAILURES.includes(f.outcome));
      assert.equal(bad.length, 0, `\n${bad.map((f) => `  ${f.outcome} (case ${f.case}, ${f.variant}): ${f.mutation}\n    ${f.cause}\n    ${f.reproduce}\n    ${f.command}`).join('\n')}`);
    });
  }
});
