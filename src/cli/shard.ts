/**
 * Scale-out by shards: `--shard i/n` computes one slice of a job, and `tda-lab merge`
 * puts the slices back together with checks. Any batch scheduler can fan the slices out
 * (a Slurm array job, a Kubernetes indexed job): each task runs the same command with its
 * own index.
 */
import { InvalidArgumentError } from 'commander';
import { showValue, TdaError } from '../errors';

export interface ShardSpec {
  /** 0-based index of this shard. */
  index: number;
  count: number;
}

/** Parses `i/n` (0 <= i < n). */
export function parseShard(value: string): ShardSpec {
  const m = /^(\d+)\/(\d+)$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError("must look like i/n, e.g. 0/4 (0-based index / number of shards)");
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || index >= count) throw new InvalidArgumentError(`index must be in [0, ${count - 1}]`);
  return { index, count };
}

/**
 * The items [start, end) of shard i of n over `total` items. Boundaries are multiples of
 * `align` (the batch size), so every batch is the same as in a single run and sharded
 * results equal the unsharded ones exactly.
 */
export function shardRange(total: number, shard: ShardSpec, align = 1): { start: number; end: number } {
  const blocks = Math.ceil(total / align);
  const startBlock = Math.floor((shard.index * blocks) / shard.count);
  const endBlock = Math.floor(((shard.index + 1) * blocks) / shard.count);
  return { start: Math.min(total, startBlock * align), end: Math.min(total, endBlock * align) };
}

/** Metadata a shard file carries so merge can check it. */
export function shardMetadata(shard: ShardSpec | undefined, total: number, range: { start: number; end: number }, axis: string): Record<string, string> {
  if (!shard) return {};
  return { shard: `${shard.index}/${shard.count}`, shard_total: String(total), shard_start: String(range.start), shard_end: String(range.end), shard_axis: axis };
}

export function describeShard(meta: Record<string, string>, file: string): { spec: ShardSpec; total: number; start: number; end: number; axis: string } {
  if (!meta.shard) throw new TdaError('is not a shard (no shard metadata; was it written with --shard i/n?)', { file, field: 'shard' });
  const m = /^(\d{1,9})\/(\d{1,9})$/.exec(meta.shard);
  if (!m || Number(m[1]) >= Number(m[2])) throw new TdaError(`must be i/n with 0 <= i < n, got ${showValue(meta.shard)}`, { file, field: 'shard' });
  // Counts and offsets come from the file: check them before merge sizes anything by them.
  const count = (key: string) => {
    const v = meta[key];
    if (typeof v !== 'string' || !/^\d{1,15}$/.test(v)) throw new TdaError(`must be a non-negative integer, got ${showValue(v)}`, { file, field: key });
    return Number(v);
  };
  const [total, start, end] = [count('shard_total'), count('shard_start'), count('shard_end')];
  if (start > end || end > total) throw new TdaError(`rows [${start}, ${end}) do not lie within [0, ${total})`, { file, field: 'shard_end' });
  return { spec: { index: Number(m[1]), count: Number(m[2]) }, total, start, end, axis: meta.shard_axis };
}
