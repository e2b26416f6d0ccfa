import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors';

export const FIXTURE_DIR = path.join(__dirname, '..', 'fixtures', 'llama-tiny');

export type Tensors = Map<string, { shape: number[]; data: Float32Array }>;

/** Every tensor of the fixture checkpoint, as float32, to write variants of it. */
export function fixtureTensors(): Tensors {
  const f = SafetensorsFile.open(path.join(FIXTURE_DIR, 'model.safetensors'));
  const out: Tensors = new Map(f.names().map((n) => [n, { shape: f.info(n).shape, data: f.readFloat32(n) }]));
  f.close();
  return out;
}

export interface FixtureExpectations {
  input_ids: number[][];
  prompt_lengths: number[];
  example_losses: number[];
  last_token_logits_first8: number[][];
  last_token_hidden_first8: number[][];
  mean_pooled_hidden_norm: number[];
}

export function fixtureExpectations(): FixtureExpectations {
  return JSON.parse(fs.readFileSync(path.join(FIXTURE_DIR, 'expected.json'), 'utf8'));
}

export function fixtureSequences(): { inputIds: number[]; promptLength: number }[] {
  const e = fixtureExpectations();
  return e.input_ids.map((ids, j) => ({ inputIds: ids, promptLength: e.prompt_lengths[j] }));
}

/** ||a - b|| / ||b||, the agreement measure the fixtures specify. */
export function relativeL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.sqrt(den);
}

/**
 * Equal up to float32 rounding: max |a - b| <= rel * max |b|. For results of native BLAS
 * products whose shapes differ (a shard, a batch, a chunk): OpenBLAS picks its kernels and
 * summation order by matrix shape, so the same entry computed in a call of another shape can
 * differ in its last bits.
 */
export function assertAllClose(a: ArrayLike<number>, b: ArrayLike<number>, message = '', rel = 1e-6): void {
  if (a.length !== b.length) throw new Error(`${message}: length ${a.length} != ${b.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  if (!(diff <= rel * scale)) throw new Error(`${message}: largest difference ${diff} exceeds ${rel} x ${scale}`);
}

export function tmpDir(prefix = 'tda-test-'): string {
  return fs.mkdtempSync(path.join(require('node:os').tmpdir(), prefix));
}
