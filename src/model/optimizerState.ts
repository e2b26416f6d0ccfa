/**
 * Adam's state saved beside a PEFT adapter: `<checkpoint>/optimizer_state.safetensors`.
 *
 * Layout: for every adapter tensor `<key>` (e.g. `base_model.model.model.layers.0.self_attn.
 * q_proj.lora_A.weight`), its first moment `<key>.exp_avg` and second moment
 * `<key>.exp_avg_sq` (torch.optim.Adam's names), F32, in the adapter's own layout ([r, in]
 * for A, [out, r] for B). Metadata: `format` (tda-lab.optimizer_state), `step` (optimizer
 * steps taken), `beta1`, `beta2`, `eps`, `learning_rate` (the rate the checkpoint stands
 * for; weights it in multi-checkpoint methods). The moments are Adam's raw running averages,
 * without bias correction, as torch keeps them: optimizer-aware attribution (LESS,
 * TrackStar) reads them as they are.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TdaError } from '../errors';
import { SafetensorsFile, TensorToWrite, writeSafetensors } from '../io/safetensors';
import { ADAPTER_WEIGHTS_FILE } from './adapter';

export const OPTIMIZER_STATE_FILE = 'optimizer_state.safetensors';
export const OPTIMIZER_STATE_FORMAT = 'tda-lab.optimizer_state';
export const FIRST_MOMENT_SUFFIX = '.exp_avg';
export const SECOND_MOMENT_SUFFIX = '.exp_avg_sq';

/** Adam's moments of one adapter tensor. */
export interface TensorMoments {
  /** The PEFT adapter key of the tensor. */
  key: string;
  shape: number[];
  /** First moment m (exp_avg), row-major in `shape`. */
  expAvg: Float32Array;
  /** Second moment v (exp_avg_sq), row-major in `shape`. */
  expAvgSq: Float32Array;
}

export interface OptimizerState {
  step: number;
  beta1: number;
  beta2: number;
  eps: number;
  learningRate: number;
  /** One entry per adapter tensor. */
  moments: TensorMoments[];
  /** Where it was read from, for error messages. */
  file?: string;
}

/** Writes `<dir>/optimizer_state.safetensors` (atomically). */
export function writeOptimizerState(dir: string, state: OptimizerState): void {
  const file = path.join(dir, OPTIMIZER_STATE_FILE);
  checkScalars(state, file);
  const tensors: Record<string, TensorToWrite> = {};
  for (const t of state.moments) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    for (const [suffix, data] of [
      [FIRST_MOMENT_SUFFIX, t.expAvg],
      [SECOND_MOMENT_SUFFIX, t.expAvgSq],
    ] as const) {
      if (data.length !== size) throw new TdaError(`has ${data.length} values, expected [${t.shape.join(', ')}]`, { file, field: t.key + suffix });
      tensors[t.key + suffix] = { dtype: 'F32', shape: t.shape, data };
    }
  }
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(file, tensors, {
    format: OPTIMIZER_STATE_FORMAT,
    step: String(state.step),
    beta1: String(state.beta1),
    beta2: String(state.beta2),
    eps: String(state.eps),
    learning_rate: String(state.learningRate),
  });
}

/**
 * Reads `<checkpointDir>/optimizer_state.safetensors` and checks it against the adapter
 * beside it: both moments of every adapter tensor, with the adapter tensor's shape, finite
 * values, a non-negative second moment, and no tensor the adapter does not have.
 */
export function readOptimizerState(checkpointDir: string): OptimizerState {
  const file = path.join(checkpointDir, OPTIMIZER_STATE_FILE);
  if (!fs.existsSync(file)) {
    throw new TdaError('optimizer state not found (the tda-lab trainer writes it with every checkpoint; scripts/convert_optimizer_state.py converts an HF optimizer.pt)', { file });
  }
  const adapterFile = path.join(checkpointDir, ADAPTER_WEIGHTS_FILE);
  if (!fs.existsSync(adapterFile)) throw new TdaError('adapter weights not found beside the optimizer state', { file: adapterFile });
  const adapter = SafetensorsFile.open(adapterFile);
  const f = SafetensorsFile.open(file);
  try {
    const meta = f.metadata;
    const num = (field: string): number => {
      const v = meta[field];
      const x = v === undefined || v.trim() === '' ? NaN : Number(v);
      if (!Number.isFinite(x)) throw new TdaError(`metadata must hold a number, got ${JSON.stringify(v)}`, { file, field });
      return x;
    };
    if (meta.format !== OPTIMIZER_STATE_FORMAT) throw new TdaError(`metadata must be '${OPTIMIZER_STATE_FORMAT}', got ${JSON.stringify(meta.format)}`, { file, field: 'format' });
    const state: OptimizerState = { step: num('step'), beta1: num('beta1'), beta2: num('beta2'), eps: num('eps'), learningRate: num('learning_rate'), moments: [], file };
    checkScalars(state, file);
    const keys = adapter.names();
    const expected = new Set(keys.flatMap((k) => [k + FIRST_MOMENT_SUFFIX, k + SECOND_MOMENT_SUFFIX]));
    const extra = f.names().find((n) => !expected.has(n));
    if (extra !== undefined) throw new TdaError(`is not a moment of a tensor of ${ADAPTER_WEIGHTS_FILE}`, { file, field: extra });
    for (const key of keys) {
      const shape = adapter.info(key).shape;
      const read = (suffix: string): Float32Array => {
        const name = key + suffix;
        if (!f.has(name)) throw new TdaError(`missing: every adapter tensor needs both moments (${FIRST_MOMENT_SUFFIX}, ${SECOND_MOMENT_SUFFIX})`, { file, field: name });
        const found = f.info(name).shape;
        if (found.length !== shape.length || found.some((d, i) => d !== shape[i])) {
          throw new TdaError(`shape [${found.join(', ')}] does not match the adapter tensor's [${shape.join(', ')}]`, { file, field: name });
        }
        const data = f.readFloat32(name);
        const bad = data.findIndex((x) => !Number.isFinite(x) || (suffix === SECOND_MOMENT_SUFFIX && x < 0));
        if (bad >= 0) throw new TdaError(`value ${data[bad]} at index ${bad} (moments must be finite, the second one non-negative)`, { file, field: name });
        return data;
      };
      state.moments.push({ key, shape, expAvg: read(FIRST_MOMENT_SUFFIX), expAvgSq: read(SECOND_MOMENT_SUFFIX) });
    }
    return state;
  } finally {
    f.close();
    adapter.close();
  }
}

/** The moments of the adapter tensor `key` (a TdaError naming it if the state has none). */
export function momentsOf(state: OptimizerState, key: string): TensorMoments {
  const t = state.moments.find((m) => m.key === key);
  if (!t) throw new TdaError(`the optimizer state has no moments for this tensor (it has ${state.moments.length})`, { file: state.file, field: key });
  return t;
}

function checkScalars(s: OptimizerState, file: string): void {
  if (!Number.isSafeInteger(s.step) || s.step < 0) throw new TdaError(`must be a whole number >= 0, got ${s.step}`, { file, field: 'step' });
  for (const [field, b] of [
    ['beta1', s.beta1],
    ['beta2', s.beta2],
  ] as const) {
    if (!(b >= 0 && b < 1)) throw new TdaError(`must be in [0, 1), got ${b}`, { file, field });
  }
  if (!(s.eps > 0)) throw new TdaError(`must be positive, got ${s.eps}`, { file, field: 'eps' });
  if (!(Number.isFinite(s.learningRate) && s.learningRate >= 0)) throw new TdaError(`must be a finite number >= 0, got ${s.learningRate}`, { file, field: 'learning_rate' });
}
