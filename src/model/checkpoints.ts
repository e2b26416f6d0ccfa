/**
 * Training checkpoints as written by the HF Trainer with a PEFT model: `<run>/checkpoint-<step>/`
 * each holding an adapter. Multi-checkpoint methods (TracIn-style sums) need them in step order.
 */
import * as fs from 'fs';
import * as path from 'path';
import { TdaError } from '../errors';
import { ADAPTER_BIN_FILE, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from './adapter';
import { isDir } from './config';

export interface CheckpointInfo {
  name: string;
  dir: string;
  step: number;
}

const CHECKPOINT_RE = /^checkpoint-(\d+)$/;

/** A directory holding a PEFT adapter (config plus weights in either format). */
export function isAdapterDir(dir: string): boolean {
  return (
    fs.existsSync(path.join(dir, ADAPTER_CONFIG_FILE)) &&
    (fs.existsSync(path.join(dir, ADAPTER_WEIGHTS_FILE)) || fs.existsSync(path.join(dir, ADAPTER_BIN_FILE)))
  );
}

/** `checkpoint-<N>` sub-folders sorted by N numerically (checkpoint-9 before checkpoint-10). */
export function listCheckpoints(dir: string): CheckpointInfo[] {
  if (!isDir(dir)) throw new TdaError('checkpoint directory not found', { file: dir });
  const found: CheckpointInfo[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const m = CHECKPOINT_RE.exec(entry.name);
    const full = path.join(dir, entry.name);
    if (!m || !isDir(full)) continue;
    // A checkpoint without an adapter would silently drop a step from the sum, so refuse it.
    if (!fs.existsSync(path.join(full, ADAPTER_CONFIG_FILE))) {
      throw new TdaError(`checkpoint folder has no ${ADAPTER_CONFIG_FILE} (not a PEFT adapter checkpoint)`, { file: full });
    }
    if (!isAdapterDir(full)) {
      throw new TdaError(`checkpoint folder has no adapter weights (${ADAPTER_WEIGHTS_FILE})`, { file: full });
    }
    // Steps beyond 2^53 are not exact: two such folders could share a step unnoticed.
    if (!Number.isSafeInteger(Number(m[1]))) throw new TdaError('step number is too large to be exact', { file: full });
    found.push({ name: entry.name, dir: full, step: Number(m[1]) });
  }
  if (!found.length) throw new TdaError('no checkpoint-* folders found', { file: dir });
  found.sort((a, b) => a.step - b.step);
  for (let i = 1; i < found.length; i++) {
    if (found[i].step === found[i - 1].step) {
      throw new TdaError(`two folders for step ${found[i].step}: ${found[i - 1].name} and ${found[i].name}`, { file: dir });
    }
  }
  return found;
}
