/**
 * Small helpers shared by the world generators: derived random streams, shuffles, template
 * filling. Every generator takes a seed and derives one stream per purpose from it, so adding
 * a draw in one generator never changes the output of another.
 */
import { TdaError } from '../../errors';
import { Rng } from '../../random';

/** FNV-1a hash of a label, as an unsigned 32-bit integer. */
function hashLabel(label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** An independent random stream for one purpose: same (seed, label), same numbers. */
export function deriveRng(seed: number, label: string): Rng {
  const base = new Rng(seed);
  return new Rng((base.nextUint32() ^ hashLabel(label)) >>> 0);
}

/** Fisher-Yates shuffle of a copy. */
export function shuffled<T>(items: readonly T[], rng: Rng): T[] {
  const a = items.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

export function pick<T>(items: readonly T[], rng: Rng): T {
  if (items.length === 0) throw new TdaError('cannot pick from an empty list');
  return items[rng.int(items.length)];
}

/** n distinct items (n <= items.length), in random order. */
export function sample<T>(items: readonly T[], n: number, rng: Rng): T[] {
  if (n > items.length) throw new TdaError(`cannot sample ${n} distinct items from ${items.length}`);
  return shuffled(items, rng).slice(0, n);
}

const PLACEHOLDER_RE = /\{(\w+)\}/g;

/** Replaces every `{name}` in the template; a placeholder without a value is an error. */
export function fill(template: string, vars: Record<string, string>): string {
  return template.replace(PLACEHOLDER_RE, (_m, name: string) => {
    const v = vars[name];
    if (v === undefined) throw new TdaError(`template ${JSON.stringify(template)} needs a value for {${name}}`, { field: name });
    return v;
  });
}

/** The words (as the whitespace pre-tokenizer splits them) of a template, placeholders removed. */
export function templateWords(template: string): string[] {
  return template.replace(PLACEHOLDER_RE, ' ').match(WORD_RE) ?? [];
}

/** The whitespace pre-tokenizer's split (`\w+|[^\w\s]+`). */
export const WORD_RE = /\w+|[^\w\s]+/g;

export function wordsOf(text: string): string[] {
  return text.match(WORD_RE) ?? [];
}

export function checkCount(value: number, field: string, min = 0, file = 'world'): void {
  if (!Number.isInteger(value) || value < min) {
    throw new TdaError(`must be an integer >= ${min}, got ${value}`, { file, field });
  }
}
