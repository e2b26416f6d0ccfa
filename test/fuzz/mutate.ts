/**
 * Seeded mutations of valid input files, shared by the fuzz tests of every reader.
 *
 * A case is a short plan of operations drawn by fast-check from a fixed seed, so every run
 * tries the same inputs and a failure shrinks to a small plan that can be replayed. Plans
 * are plain numbers and names: they pick what to change in the document they are applied
 * to, which keeps one arbitrary usable for every file kind.
 */
import * as assert from 'node:assert/strict';
import fc from 'fast-check';
import { TdaError } from '../../src/errors';

/** The one seed of every fuzz test: same seed, same cases, on every machine. */
export const FUZZ_SEED = 20261202;

/** Options for fc.assert: the fixed seed and how many cases to draw. */
export function fuzzRuns(numRuns: number): { seed: number; numRuns: number } {
  return { seed: FUZZ_SEED, numRuns };
}

// ------------------------------------------------------------------ JSON text pieces

/** JSON text inserted as is: values JSON.stringify cannot produce (1e999 parses to Infinity). */
export class RawJson {
  constructor(readonly text: string) {}
}

/** An object written with its entries in order, duplicates included (the last one wins in JSON.parse). */
export class DupObject {
  constructor(readonly entries: [string, unknown][]) {}
}

const deep = (open: string, close: string, depth: number) => new RawJson(open.repeat(depth) + close.repeat(depth));

/** Values that break careless readers: wrong types, edge numbers, huge and deep values. */
export const HOSTILE_VALUES: unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1,
  0.5,
  -0.5,
  2 ** 31,
  2 ** 32,
  -(2 ** 31),
  1e12,
  -1e12,
  2 ** 53,
  1e300,
  -1e300,
  new RawJson('1e999'),
  new RawJson('-1e999'),
  new RawJson('-0'),
  new RawJson('9007199254740993'),
  new RawJson('1' + '0'.repeat(400)),
  'NaN',
  'Infinity',
  '-Infinity',
  '',
  '0',
  '1e12',
  'line one\nline two',
  '__proto__',
  'x'.repeat(100_000),
  [],
  {},
  [1e12],
  [2 ** 31, 2 ** 31],
  [-1],
  [0],
  [null],
  ['1'],
  new Array(5000).fill(7),
  { __proto__: null, valueOf: 1, toString: 'x' },
  deep('[', ']', 100_000),
  new RawJson('{"a":'.repeat(50_000) + '1' + '}'.repeat(50_000)),
];

/** Keys added to objects: prototype names and the fields readers look for. */
const HOSTILE_KEYS = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', '', 'a\nb', 'x'.repeat(10_000)];

// ------------------------------------------------------------------ JSON tree operations

export const JSON_OP_KINDS = ['delete', 'replace', 'retype', 'numeric', 'duplicateKey', 'addKey', 'swap', 'grow', 'nest'] as const;
export type JsonOpKind = (typeof JSON_OP_KINDS)[number];

export interface JsonOp {
  kind: JsonOpKind;
  /** Which node (modulo the number of nodes). */
  at: number;
  /** Which replacement value, key or second node. */
  pick: number;
  /** How much (growth factor, depth, numeric change). */
  amount: number;
}

export const jsonOpArb: fc.Arbitrary<JsonOp> = fc.record({
  kind: fc.constantFrom(...JSON_OP_KINDS),
  at: fc.nat(),
  pick: fc.nat(),
  amount: fc.nat({ max: 1000 }),
});

export const jsonPlanArb = fc.array(jsonOpArb, { minLength: 1, maxLength: 3 });

type Container = Record<string, unknown> | unknown[];
interface NodeRef {
  parent: Container | null;
  key: string | number;
  value: unknown;
}

function isContainer(v: unknown): v is Container {
  return typeof v === 'object' && v !== null && !(v instanceof RawJson) && !(v instanceof DupObject);
}

/** Every node, root first (iterative: documents may hold long arrays). */
function nodes(root: { v: unknown }): NodeRef[] {
  const out: NodeRef[] = [{ parent: root as unknown as Container, key: 'v', value: root.v }];
  for (let i = 0; i < out.length && out.length < 20_000; i++) {
    const v = out[i].value;
    if (!isContainer(v)) continue;
    if (Array.isArray(v)) v.forEach((x, j) => out.push({ parent: v, key: j, value: x }));
    else for (const k of Object.keys(v)) out.push({ parent: v, key: k, value: v[k] });
  }
  return out;
}

function setAt(ref: NodeRef, value: unknown): void {
  (ref.parent as Record<string | number, unknown>)[ref.key] = value;
}

function retype(v: unknown): unknown {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return /^-?\d/.test(v) ? Number(v) : [v];
  if (typeof v === 'boolean') return v ? 1 : 'false';
  if (v === null) return {};
  if (Array.isArray(v)) return Object.fromEntries(v.map((x, i) => [String(i), x]));
  if (isContainer(v)) return Object.values(v);
  return null;
}

function changeNumber(v: number, amount: number): unknown {
  const changes = [v + 1, v - 1, -v, v * 2 ** 31, v * 1e12, v + 0.5, 0, v * 3, Math.floor(v / 2), v + 2 ** 53];
  return changes[amount % changes.length];
}

/** Apply one operation in place; `pool` holds replacement values (hostile plus reader-specific ones). */
function applyOp(root: { v: unknown }, op: JsonOp, pool: unknown[]): void {
  const all = nodes(root);
  const ref = all[op.at % all.length];
  const nonRoot = all.length > 1 ? all[1 + (op.at % (all.length - 1))] : ref;
  const pooled = () => structuredCloneValue(pool[op.pick % pool.length]);
  switch (op.kind) {
    case 'delete': {
      if (nonRoot === ref && all.length === 1) return setAt(ref, undefined);
      const p = nonRoot.parent as Container;
      if (Array.isArray(p)) p.splice(nonRoot.key as number, 1);
      else delete p[nonRoot.key as string];
      return;
    }
    case 'replace':
      return setAt(ref, pooled());
    case 'retype':
      return setAt(ref, retype(ref.value));
    case 'numeric':
      return setAt(ref, typeof ref.value === 'number' ? changeNumber(ref.value, op.amount) : pooled());
    case 'duplicateKey': {
      // Re-emit the object with one key repeated after the others, holding another value.
      const obj = isContainer(ref.value) && !Array.isArray(ref.value) ? ref.value : null;
      if (!obj) return setAt(ref, new DupObject([['a', 1], ['a', pooled()]]));
      const keys = Object.keys(obj);
      const entries: [string, unknown][] = Object.entries(obj);
      const key = keys.length ? keys[op.amount % keys.length] : '__proto__';
      entries.push([key, pooled()]);
      return setAt(ref, new DupObject(entries));
    }
    case 'addKey': {
      const obj = isContainer(ref.value) && !Array.isArray(ref.value) ? ref.value : null;
      if (!obj) return setAt(ref, pooled());
      const keys = [...HOSTILE_KEYS, ...pool.filter((x): x is string => typeof x === 'string' && x.length < 100)];
      const key = keys[op.amount % keys.length];
      // defineProperty, so '__proto__' becomes a real key as JSON.parse would make it.
      Object.defineProperty(obj, key, { value: pooled(), enumerable: true, writable: true, configurable: true });
      return;
    }
    case 'swap': {
      const other = all[op.pick % all.length];
      if (other === ref || isAncestor(ref.value, other.value) || isAncestor(other.value, ref.value)) return setAt(ref, pooled());
      const a = ref.value;
      setAt(ref, other.value);
      setAt(other, a);
      return;
    }
    case 'grow': {
      const v = ref.value;
      const times = 2 + (op.amount % 200);
      if (Array.isArray(v)) return setAt(ref, Array.from({ length: Math.min(v.length * times, 200_000) }, (_, i) => v[i % Math.max(v.length, 1)]));
      if (typeof v === 'string') return setAt(ref, v.repeat(Math.min(times * 50, 100_000 / Math.max(v.length, 1))));
      return setAt(ref, pooled());
    }
    case 'nest': {
      const depth = 1 + (op.amount % 8);
      let v = ref.value;
      for (let i = 0; i < depth; i++) v = op.pick % 2 ? [v] : { value: v };
      return setAt(ref, v);
    }
  }
}

function isAncestor(a: unknown, b: unknown): boolean {
  if (!isContainer(a)) return false;
  const stack: unknown[] = [a];
  while (stack.length) {
    const v = stack.pop();
    if (v === b) return true;
    if (isContainer(v)) for (const x of Array.isArray(v) ? v : Object.values(v)) stack.push(x);
  }
  return false;
}

function structuredCloneValue(v: unknown): unknown {
  if (v instanceof RawJson || v instanceof DupObject) return v;
  if (isContainer(v) && Object.getPrototypeOf(v) === null) return Object.assign(Object.create(null), v);
  return v === undefined ? undefined : structuredClone(v);
}

/** JSON text of a mutated tree (RawJson verbatim, DupObject with its duplicate keys); deep values are RawJson, so recursion stays shallow. */
export function toJsonText(v: unknown): string {
  if (v instanceof RawJson) return v.text;
  if (v instanceof DupObject) return `{${v.entries.map(([k, x]) => `${JSON.stringify(k)}:${toJsonText(x)}`).join(',')}}`;
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : toJsonText(x))).join(',')}]`;
  if (isContainer(v)) {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${toJsonText(o[k])}`)
      .join(',')}}`;
  }
  return v === undefined ? 'null' : JSON.stringify(v);
}

/** Mutated JSON text of `doc` (not modified) under `plan`; `extra` values join the replacement pool. */
export function mutateJson(doc: unknown, plan: JsonOp[], extra: unknown[] = []): string {
  const root = { v: structuredClone(doc) };
  // Half the replacements come from the reader's own vocabulary (dtypes, field names, ...), so
  // that mutations also make files that look right and reach the checks of meaning.
  for (const op of plan) applyOp(root, op, extra.length && op.pick % 2 === 0 ? extra : [...HOSTILE_VALUES, ...extra]);
  return toJsonText(root.v);
}

// ------------------------------------------------------------------ byte operations

export const BYTE_OP_KINDS = ['flip', 'set', 'truncate', 'extend', 'insert', 'remove', 'copy'] as const;
export type ByteOpKind = (typeof BYTE_OP_KINDS)[number];

export interface ByteOp {
  kind: ByteOpKind;
  /** Position (modulo the length; `near` ops stay within the first bytes where headers live). */
  at: number;
  near: boolean;
  value: number;
  length: number;
}

export const byteOpArb: fc.Arbitrary<ByteOp> = fc.record({
  kind: fc.constantFrom(...BYTE_OP_KINDS),
  at: fc.nat(),
  near: fc.boolean(),
  value: fc.nat({ max: 255 }),
  length: fc.integer({ min: 1, max: 64 }),
});

export const bytePlanArb = fc.array(byteOpArb, { minLength: 1, maxLength: 4 });

/** A byte plan for one case in four (null otherwise): text readers also get broken encodings and syntax. */
export const sometimesBytesArb: fc.Arbitrary<ByteOp[] | null> = fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: bytePlanArb });

/** A mutated copy of `bytes`; `near` positions fall in the first `nearLimit` bytes (the header). */
export function mutateBytes(bytes: Uint8Array, plan: ByteOp[], nearLimit = 256): Uint8Array {
  let b = Uint8Array.from(bytes);
  for (const op of plan) {
    const span = op.near ? Math.min(nearLimit, b.length) : b.length;
    const at = span ? op.at % span : 0;
    switch (op.kind) {
      case 'flip':
        if (b.length) b[at] ^= 1 << (op.value % 8);
        break;
      case 'set':
        if (b.length) b[at] = op.value;
        break;
      case 'truncate':
        b = b.slice(0, at);
        break;
      case 'extend': {
        const tail = Uint8Array.from({ length: op.length * 16 }, (_, i) => (op.value + i * 31) & 255);
        b = concat(b, tail);
        break;
      }
      case 'insert':
        b = concat(b.slice(0, at), Uint8Array.from({ length: op.length }, () => op.value), b.slice(at));
        break;
      case 'remove':
        b = concat(b.slice(0, at), b.slice(at + op.length));
        break;
      case 'copy': {
        const from = (op.value * 7919) % Math.max(b.length, 1);
        b.copyWithin(at, from, from + op.length);
        break;
      }
    }
  }
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Mutated text: byte operations on its UTF-8 encoding (may make it invalid UTF-8 or JSON). */
export function mutateText(text: string, plan: ByteOp[], nearLimit = 256): Buffer {
  return Buffer.from(mutateBytes(new TextEncoder().encode(text), plan, nearLimit));
}

// ------------------------------------------------------------------ outcomes

export interface Outcome {
  errors: number;
  successes: number;
}

export function newOutcome(): Outcome {
  return { errors: 0, successes: 0 };
}

/**
 * The contract of every reader on a mutated file: either a TdaError whose message is one
 * line and names `file` (and nothing else leaks out: no TypeError, RangeError or
 * SyntaxError), or a result that passes `check` (the reader's invariants).
 */
export function expectErrorOrValid<T>(outcome: Outcome, file: string, read: () => T, check: (result: T) => void): void {
  const before = arrayBufferBytes();
  let result: T;
  try {
    result = read();
  } catch (e) {
    assertCleanError(e, file);
    outcome.errors++;
    assertNoBigAllocation(before);
    return;
  }
  check(result);
  outcome.successes++;
  assertNoBigAllocation(before);
}

/** What a reader may allocate for one of these small files: far below what a hostile size (10^12 elements) would ask for. */
export const ALLOCATION_LIMIT = 64 * 1024 * 1024;

function assertNoBigAllocation(before: number): void {
  const grown = arrayBufferBytes() - before;
  assert.ok(grown < ALLOCATION_LIMIT, `the reader left ${grown} bytes of ArrayBuffers allocated for a small mutated file`);
}

/** A TdaError with a one-line message naming `file`. */
export function assertCleanError(e: unknown, file: string): asserts e is TdaError {
  if (!(e instanceof TdaError)) {
    const err = e as Error;
    assert.fail(`expected a TdaError, got ${err?.constructor?.name}: ${String(err?.message).slice(0, 300)}\n${err?.stack?.split('\n').slice(1, 6).join('\n')}`);
  }
  assert.ok(!/[\r\n]/.test(e.message), `message is not one line: ${JSON.stringify(e.message.slice(0, 300))}`);
  assert.ok(e.message.includes(file), `message does not name ${file}: ${e.message.slice(0, 300)}`);
}

/** Both outcomes must occur, so a fuzz test cannot pass by rejecting (or accepting) everything. FUZZ_VERBOSE=1 prints the counts. */
export function assertMixed(outcome: Outcome, label: string): void {
  if (process.env.FUZZ_VERBOSE) console.log(`${label}: ${outcome.errors} rejected, ${outcome.successes} accepted`);
  assert.ok(outcome.errors > 0, `${label}: no mutated case was rejected`);
  assert.ok(outcome.successes > 0, `${label}: no mutated case was accepted`);
}

/** Bytes held by ArrayBuffers now; a reader that allocated from a hostile size would show here. */
export function arrayBufferBytes(): number {
  return process.memoryUsage().arrayBuffers;
}
