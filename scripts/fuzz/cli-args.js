// Command-line mutations of a generate command: options given odd values, dropped, repeated,
// misspelt or unknown, and flags where values belong. An option given a valid value may change the
// output (changed-valid); an invalid value must be refused (exit 2, one line) — accepting it is garbage.
import { weighted } from './mutators.js';

const int = (lo, hi = Infinity) => (v) => /^-?\d+$/.test(v) && Number(v) >= lo && Number(v) <= hi;
const num = (lo, hi, openLo = false) => (v) => /^-?(\d+\.?\d*|\.\d+)(e-?\d+)?$/i.test(v) && Number.isFinite(Number(v)) && (openLo ? Number(v) > lo : Number(v) >= lo) && Number(v) <= hi;
const oneOf = (...xs) => (v) => xs.includes(v);

/** The options generate takes that a fuzz case may set, with what a valid value is and some valid ones. */
export const OPTIONS = {
  '--max-tokens': { valid: int(0), good: ['1', '5', '0'] },
  '--temperature': { valid: num(0, Infinity), good: ['0', '0.7', '1.5'] },
  '--top-k': { valid: int(0), good: ['1', '40'] },
  '--top-p': { valid: num(0, 1, true), good: ['0.9', '1'] },
  '--seed': { valid: int(0, 2 ** 53), good: ['1', '42'] },
  '--memory': { valid: (v) => /^(\d+(\.\d+)?%|\d+(\.\d+)?\s*(B|KB|MB|GB|KiB|MiB|GiB)?)$/i.test(v), good: ['90%', '100%', '64MiB'] },
  '--mode': { valid: oneOf('dense', 'naive', 'hybrid', 'sparse'), good: ['dense', 'naive', 'hybrid', 'sparse'] },
  '--window': { valid: (v) => v === 'lru' || int(0)(v), good: ['lru', '0', '5'] },
  '--threshold': { valid: num(-Infinity, Infinity), good: ['0', '0.5'] },
  '--hybrid-share': { valid: num(0, 1), good: ['0.5', '1'] },
  '--context': { valid: int(1), good: ['64', '128'] },
  '--kv': { valid: oneOf('f32', 'f16'), good: ['f32', 'f16'] },
  '--io': { valid: oneOf('wasi', 'async', 'thread'), good: ['wasi', 'async', 'thread'] },
  '--queue-depth': { valid: int(1, 4096), good: ['1', '8'] },
  '--predictor-rank': { valid: int(1), good: ['16'] },
  '--predictor-dtype': { valid: oneOf('q8_0', 'f16'), good: ['q8_0', 'f16'] },
  '--resident-dtype': { valid: oneOf('q8_0', 'stored', 'auto'), good: ['q8_0', 'stored'] },
  '--device': { valid: oneOf('cpu', 'auto'), good: ['cpu', 'auto'] },
};
const FLAGS = ['--no-window', '--no-bundle', '--check-predictor', '--direct', '--no-stop'];
const ODD = ['0', '-1', 'NaN', 'Infinity', '1e309', '2147483647', '4294967295', '9007199254740993', '-0', '0x10', '1.5', '', 'abc', '9'.repeat(400), '--json', ' 5', '５'];

/** One mutation of `argv` (a generate command, its prompt last): { argv, desc, legit }. */
export function cliCase(r, argv) {
  const out = [...argv];
  const prompt = out.length - 1;
  const valued = out.map((a, i) => (OPTIONS[a] ? i : -1)).filter((i) => i >= 0);
  const op = weighted(r, [[5, 'odd'], [3, 'good'], [2, 'drop'], [1, 'drop-name'], [2, 'repeat'], [1, 'unknown'], [1, 'typo'], [1, 'equals'], [1, 'flag']]);
  const name = r.pick(Object.keys(OPTIONS));
  const place = (tokens) => { out.splice(prompt, 0, ...tokens); };
  switch (op) {
    case 'odd': {
      const v = r.pick(ODD);
      place([name, v]);
      return { argv: out, desc: `${name} ${JSON.stringify(v)}`, legit: OPTIONS[name].valid(v) };
    }
    case 'good': {
      const v = r.pick(OPTIONS[name].good);
      place([name, v]);
      return { argv: out, desc: `${name} ${v}`, legit: true };
    }
    case 'drop': {
      if (!valued.length) break;
      const i = r.pick(valued), gone = out.splice(i, 2);
      return { argv: out, desc: `dropped ${gone.join(' ')}`, legit: true };
    }
    case 'drop-name': {
      if (!valued.length) break;
      const i = r.pick(valued), gone = out.splice(i, 1);
      return { argv: out, desc: `dropped the name of ${gone[0]} (its value joins the prompt)`, legit: true };
    }
    case 'repeat': {
      const v = r.pick(OPTIONS[name].good), w = r.pick(OPTIONS[name].good);
      place([name, v, name, w]);
      return { argv: out, desc: `${name} ${v} ${name} ${w}`, legit: true };
    }
    case 'unknown':
      place(['--frobnicate', '1']);
      return { argv: out, desc: 'unknown option --frobnicate 1', legit: false };
    case 'typo': {
      const typo = name.slice(0, -1);
      place([typo, r.pick(OPTIONS[name].good)]);
      return { argv: out, desc: `misspelt option ${typo}`, legit: !!OPTIONS[typo] };
    }
    case 'equals': {
      const v = r.pick(r.chance(0.5) ? OPTIONS[name].good : ODD);
      place([`${name}=${v}`]);
      return { argv: out, desc: `${name}=${JSON.stringify(v)}`, legit: OPTIONS[name].valid(v) };
    }
    case 'flag': {
      const f = r.pick(FLAGS);
      // A flag given a value: the value becomes part of the prompt (arguments are joined).
      if (r.chance(0.5)) { place([f, '1']); return { argv: out, desc: `${f} 1 (a flag with a value: the value joins the prompt)`, legit: true }; }
      place([f]);
      return { argv: out, desc: f, legit: true };
    }
  }
  place(['--frobnicate']);
  return { argv: out, desc: 'unknown option --frobnicate', legit: false };
}
