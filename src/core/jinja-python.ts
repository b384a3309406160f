// Python semantics @huggingface/jinja lacks, added on one Interpreter instance (nothing global is
// patched): Python's whitespace for `| trim` / `.strip()` (str.isspace: no U+FEFF, which JS's trim
// removes, but U+001C..U+001F and U+0085, which it keeps), `.strip(chars)` / `.lstrip(chars)` /
// `.rstrip(chars)` stripping only `chars`, `| trim(chars)`, and Jinja's `select` / `reject` filters
// (`reject('equalto', 'x')`). Plus strftimeNow, Python's `datetime.now().strftime(fmt)`.
import { Environment, type Interpreter } from '@huggingface/jinja';

type Value = { type: string; value: any; __bool__(): { value: boolean } };
type Node = { type: string; [k: string]: any };
type Fn = (args: Value[], env: Environment) => Value;
interface Hooks {
  applyFilter(operand: Value, filter: Node, env: Environment): Value;
  evaluateMemberExpression(expr: Node, env: Environment): Value;
  evaluate(node: Node | undefined, env: Environment): Value;
  evaluateCallArguments(args: Node[], env: Environment): Value[];
}

// The library's runtime value classes are not exported: take them from values it makes.
const probe = new Environment();
const StringValue = probe.set('s', '').constructor as new (v: string) => Value;
const ArrayValue = probe.set('a', []).constructor as new (v: Value[]) => Value;
const FunctionValue = probe.set('f', () => null).constructor as new (v: Fn) => Value;
const isString = (v: Value | undefined): v is Value => v instanceof StringValue;

const PY_SPACE = '\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000';
const PY_SPACE_SET = new Set(PY_SPACE);

/** Python's `s.strip(chars)` / `lstrip` / `rstrip`: `chars` null or undefined = str.isspace whitespace. */
export function pyStrip(s: string, chars: string | null | undefined, left = true, right = true): string {
  const set = chars == null ? PY_SPACE_SET : new Set(chars);
  const cps = Array.from(s);
  let a = 0, b = cps.length;
  if (left) while (a < b && set.has(cps[a])) a++;
  if (right) while (b > a && set.has(cps[b - 1])) b--;
  return a === 0 && b === cps.length ? s : cps.slice(a, b).join('');
}

const STRIPS: Record<string, [boolean, boolean]> = { strip: [true, true], lstrip: [true, false], rstrip: [false, true] };
const CACHED = '__flashneuron_evaluated__';

const isKwargs = (v: Value | undefined): boolean => v?.type === 'KeywordArgumentsValue';

function charsArg(args: Value[], what: string): string | null {
  const a = isKwargs(args[0]) ? args[0].value.get('chars') : args[0];
  if (a === undefined || a.type === 'NullValue' || a.type === 'UndefinedValue') return null;
  if (!isString(a)) throw new Error(`${what} arg must be None or str`);
  return a.value;
}

/** Gives one Interpreter Python's string stripping and Jinja's select / reject filters. */
export function pythonize(interpreter: Interpreter): void {
  const self = interpreter as unknown as Hooks;
  const evaluate = self.evaluate.bind(interpreter);
  const applyFilter = self.applyFilter.bind(interpreter);
  const member = self.evaluateMemberExpression.bind(interpreter);

  self.evaluate = (node, env) => (node?.type === CACHED ? node.value : evaluate(node, env));

  self.evaluateMemberExpression = (expr, env) => {
    const name = !expr.computed && expr.property?.type === 'Identifier' ? expr.property.value as string : undefined;
    if (name === undefined || !(name in STRIPS)) return member(expr, env);
    const object = self.evaluate(expr.object, env);
    if (!isString(object)) return member({ ...expr, object: { type: CACHED, value: object } }, env);
    const [left, right] = STRIPS[name];
    return new FunctionValue((args) => new StringValue(pyStrip(object.value, charsArg(args, name), left, right)));
  };

  self.applyFilter = (operand, filter, env) => {
    const call = filter.type === 'CallExpression' && filter.callee?.type === 'Identifier';
    const name: string | undefined = filter.type === 'Identifier' ? filter.value : call ? filter.callee.value : undefined;
    const args = (): Value[] => (call ? self.evaluateCallArguments(filter.args, env) : []);
    if (name === 'trim' && isString(operand)) return new StringValue(pyStrip(operand.value, charsArg(args(), 'trim')));
    if ((name === 'select' || name === 'reject') && operand instanceof ArrayValue) {
      const [test, ...rest] = args().filter((a) => !isKwargs(a));
      let pass: (v: Value) => boolean = (v) => v.__bool__().value;
      if (test !== undefined) {
        if (!isString(test)) throw new Error(`${name}: the test name must be a string`);
        const fn = env.tests.get(test.value);
        if (!fn) throw new Error(`No test named '${test.value}'.`);
        pass = (v) => fn(v as never, ...(rest as never[]));
      }
      const keep = name === 'select';
      return new ArrayValue((operand.value as Value[]).filter((v) => pass(v) === keep));
    }
    return applyFilter(operand, filter, env);
  };
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/**
 * Python's `datetime.now().strftime(fmt)` (local time, C locale) for %a %A %b %B %d %e %H %I %j %m %M
 * %p %S %y %Y %%, and glibc's `%-d` style (no padding); other directives are left as they are.
 */
export function strftimeNow(fmt: string, date: Date = new Date()): string {
  return fmt.replace(/%(-?)([a-zA-Z%])/g, (whole, nopad: string, c: string) => {
    const pad = (n: number, w = 2) => (nopad ? String(n) : String(n).padStart(w, '0'));
    const h12 = date.getHours() % 12 || 12;
    const start = new Date(date.getFullYear(), 0, 1);
    const yday = Math.round((new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime() - start.getTime()) / 86400000) + 1;
    switch (c) {
      case 'a': return DAYS[date.getDay()].slice(0, 3);
      case 'A': return DAYS[date.getDay()];
      case 'b': return MONTHS[date.getMonth()].slice(0, 3);
      case 'B': return MONTHS[date.getMonth()];
      case 'd': return pad(date.getDate());
      case 'e': return nopad ? String(date.getDate()) : String(date.getDate()).padStart(2, ' ');
      case 'H': return pad(date.getHours());
      case 'I': return pad(h12);
      case 'j': return pad(yday, 3);
      case 'm': return pad(date.getMonth() + 1);
      case 'M': return pad(date.getMinutes());
      case 'p': return date.getHours() < 12 ? 'AM' : 'PM';
      case 'S': return pad(date.getSeconds());
      case 'y': return pad(date.getFullYear() % 100);
      case 'Y': return String(date.getFullYear());
      case '%': return nopad ? whole : '%';
      default: return whole;
    }
  });
}
