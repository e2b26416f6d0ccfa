/**
 * `tda-lab merge`: combines the shard files of `grads --shard` or `score --shard` (full
 * matrices or `--top-k` files, whose rows are queries too) into one file.
 */
import { Command } from 'commander';
import { showValue, TdaError } from '../errors';
import { SafetensorsFile, TensorToWrite, writeSafetensors } from '../io/safetensors';
import { describeShard } from './shard';
import { withOutputLock } from '../io/lock';
import { settingAt, settingsDifference } from '../settings';
import { canonicalJson } from '../gradients/store';
import { mergeConvergence } from '../attribution/iterativeSolver';

const SHARD_KEYS = ['shard', 'shard_total', 'shard_start', 'shard_end'];

/**
 * What an iterative solver reached (settings.convergence) depends on each shard's queries:
 * it is combined (worst residual per block), not compared.
 */
const OUTCOME_KEY = 'convergence';

function parseSettings(f: { file: string; st: SafetensorsFile }): unknown {
  let value: unknown;
  try {
    value = JSON.parse(f.st.metadata.settings ?? 'null');
  } catch {
    throw new TdaError('is not valid JSON', { file: f.file, field: 'settings' });
  }
  // Settings are a few levels deep; a deeper value would overflow the recursive comparison.
  if (depth(value) > MAX_SETTINGS_DEPTH) throw new TdaError(`is nested deeper than ${MAX_SETTINGS_DEPTH} levels`, { file: f.file, field: 'settings' });
  return value;
}

function withoutOutcome(settings: unknown): unknown {
  if (typeof settings !== 'object' || settings === null || !(OUTCOME_KEY in settings)) return settings;
  const { [OUTCOME_KEY]: _, ...rest } = settings as Record<string, unknown>;
  return rest;
}

/** The merged file's settings: the shards' common settings with their convergence records combined. */
function mergedSettings(shards: { file: string; st: SafetensorsFile }[]): string | undefined {
  if (shards[0].st.metadata.settings === undefined) return undefined;
  const all = shards.map(parseSettings) as Record<string, unknown>[];
  const records = all.map((s) => s?.[OUTCOME_KEY]).filter((c) => c !== undefined) as Parameters<typeof mergeConvergence>[0];
  if (records.length === 0) return shards[0].st.metadata.settings;
  return canonicalJson({ ...all[0], [OUTCOME_KEY]: mergeConvergence(records) });
}

/** A score file's resolved settings (JSON metadata), compared key by key so the message names the setting. */
function checkSameSettings(first: { file: string; st: SafetensorsFile }, other: { file: string; st: SafetensorsFile }): void {
  const a = withoutOutcome(parseSettings(first));
  const b = withoutOutcome(parseSettings(other));
  const at = settingsDifference(a, b);
  if (at) throw new TdaError(`setting '${at}' is ${showValue(settingAt(b, at))} but ${showValue(settingAt(a, at))} in ${first.file}`, { file: other.file, field: `settings.${at}` });
}

const MAX_SETTINGS_DEPTH = 64;

/** Nesting depth of a JSON value, without recursion. */
function depth(value: unknown): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    deepest = Math.max(deepest, d);
    if (typeof v === 'object' && v !== null && d <= MAX_SETTINGS_DEPTH) for (const x of Object.values(v)) stack.push([x, d + 1]);
  }
  return deepest;
}

/** One writer per output file: a second `merge` to the same --out is refused, naming the first. */
export function runMerge(files: string[], out: string): { shards: number; rows: number } {
  return withOutputLock(out, () => merge(files, out));
}

function merge(files: string[], out: string): { shards: number; rows: number } {
  if (files.length === 0) throw new TdaError('no shard files given', { field: 'files' });
  const opened = files.map((f) => ({ file: f, st: SafetensorsFile.open(f) }));
  try {
    const shards = opened.map(({ file, st }) => ({ file, st, ...describeShard(st.metadata, file) }));
    const first = shards[0];
    const count = first.spec.count;
    const seen = new Map<number, string>();
    for (const s of shards) {
      if (s.spec.count !== count || s.total !== first.total || s.axis !== first.axis) {
        throw new TdaError(`shard ${s.spec.index}/${s.spec.count} of ${s.total} ${s.axis} does not belong with ${first.file} (shard ${first.spec.index}/${count} of ${first.total} ${first.axis})`, { file: s.file, field: 'shard' });
      }
      const other = seen.get(s.spec.index);
      if (other) throw new TdaError(`shard ${s.spec.index}/${count} is given twice (also ${other})`, { file: s.file, field: 'shard' });
      seen.set(s.spec.index, s.file);
      // Everything that produced the shard must match (model, adapter, data, method, mask, ...).
      // The format first: a top-k shard among full-matrix shards is best told as such.
      for (const key of new Set(['format', ...Object.keys(first.st.metadata), ...Object.keys(s.st.metadata)])) {
        if (SHARD_KEYS.includes(key)) continue;
        if (key === 'settings') checkSameSettings(first, s);
        else if (first.st.metadata[key] !== s.st.metadata[key]) {
          throw new TdaError(`'${key}' is ${showValue(s.st.metadata[key])} but ${showValue(first.st.metadata[key])} in ${first.file}`, { file: s.file, field: key });
        }
      }
    }
    // The count comes from the files: list a few missing shards rather than allocating one slot per shard.
    const missing: number[] = [];
    for (let i = 0; i < count && missing.length < 10; i++) if (!seen.has(i)) missing.push(i);
    if (missing.length) {
      const more = count - seen.size > missing.length ? `, ... (${count - seen.size} in all)` : '';
      throw new TdaError(`missing shard${missing.length > 1 ? 's' : ''} ${missing.map((i) => `${i}/${count}`).join(', ')}${more}`, { file: first.file, field: 'shard' });
    }
    shards.sort((a, b) => a.spec.index - b.spec.index);
    shards.forEach((s, k) => {
      const expectedStart = k === 0 ? 0 : shards[k - 1].end;
      if (s.start !== expectedStart) throw new TdaError(`covers ${s.axis} [${s.start}, ${s.end}) but the previous shard ended at ${expectedStart}`, { file: s.file, field: 'shard_start' });
    });
    if (shards[shards.length - 1].end !== first.total) throw new TdaError(`shards cover ${shards[shards.length - 1].end} of ${first.total} ${first.axis}`, { file: shards[shards.length - 1].file, field: 'shard_end' });

    const names = first.st.names();
    const tensors: Record<string, TensorToWrite> = {};
    for (const name of names) {
      const shape0 = first.st.info(name).shape;
      // Integer tensors (top-k indices) stay I32; everything else is merged as F32.
      const dtype0 = first.st.info(name).dtype;
      const integer = dtype0 === 'I32';
      const parts = shards.map((s) => {
        if (!s.st.has(name)) throw new TdaError('tensor is missing from this shard', { file: s.file, field: name });
        const shape = s.st.info(name).shape;
        if (shape.length !== shape0.length || shape.slice(1).some((d, i) => d !== shape0[i + 1]) || shape[0] !== s.end - s.start) {
          throw new TdaError(`shape [${shape}] does not fit shard rows [${s.start}, ${s.end}) and [${shape0}] in ${first.file}`, { file: s.file, field: name });
        }
        const dtype = s.st.info(name).dtype;
        if (integer !== (dtype === 'I32')) throw new TdaError(`dtype ${dtype} differs from ${dtype0} in ${first.file}`, { file: s.file, field: name });
        return integer ? s.st.readInt32(name) : s.st.readFloat32(name);
      });
      const total = parts.reduce((a, p) => a + p.length, 0);
      const data = integer ? new Int32Array(total) : new Float32Array(total);
      let offset = 0;
      for (const p of parts) {
        data.set(p, offset);
        offset += p.length;
      }
      tensors[name] = { shape: [first.total, ...shape0.slice(1)], data };
    }
    for (const s of shards) {
      const extra = s.st.names().filter((n) => !names.includes(n));
      if (extra.length) throw new TdaError(`has tensors the other shards lack: ${extra.join(', ')}`, { file: s.file, field: extra[0] });
    }
    const metadata = Object.fromEntries(Object.entries(first.st.metadata).filter(([k]) => !SHARD_KEYS.includes(k) && k !== 'shard_axis'));
    const settings = mergedSettings(shards);
    writeSafetensors(out, tensors, { ...metadata, ...(settings !== undefined ? { settings } : {}), merged_from_shards: String(count) });
    return { shards: count, rows: first.total };
  } finally {
    opened.forEach(({ st }) => st.close());
  }
}

export function registerMergeCommand(program: Command): void {
  program
    .command('merge')
    .description('combine the shard files of grads --shard or score --shard (checks that every shard is there exactly once)')
    .requiredOption('--out <file>', 'merged .safetensors')
    .argument('<shards...>', 'shard files, in any order')
    .action((files: string[], o) => {
      const r = runMerge(files, o.out);
      process.stderr.write(`wrote ${o.out}: ${r.shards} shards, ${r.rows} rows\n`);
    });
}
