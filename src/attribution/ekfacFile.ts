/**
 * EK-FAC factor files: safetensors (format `tda-lab.ekfac-factors`, written atomically) with
 * per LoRA tensor `<adapter key>.<part>` for the parts below, and as metadata the settings
 * that made them (`settings`, canonical JSON; `tensors`, the adapter keys in adapter order).
 * Reading checks every shape against the tensor's [rows, cols] and refuses non-finite values,
 * naming the file and the tensor.
 */
import { TdaError } from '../errors';
import { canonicalJson } from '../gradients/store';
import { SafetensorsFile, TensorToWrite, writeSafetensors } from '../io/safetensors';
import { EkfacFactors, EkfacFactorSettings, EkfacTensorFactors, FISHER_KINDS } from './ekfacFactors';

export const EKFAC_FORMAT = 'tda-lab.ekfac-factors';

type Part = 'activation_covariance' | 'gradient_covariance' | 'activation_eigenvectors' | 'gradient_eigenvectors' | 'activation_eigenvalues' | 'gradient_eigenvalues' | 'lambda';

/** Each part: where it lives in EkfacTensorFactors and its shape for a [rows, cols] tensor. */
const PARTS: readonly { part: Part; key: keyof EkfacTensorFactors; shape: (rows: number, cols: number) => number[] }[] = [
  { part: 'activation_covariance', key: 'activationCovariance', shape: (_r, c) => [c, c] },
  { part: 'gradient_covariance', key: 'gradientCovariance', shape: (r) => [r, r] },
  { part: 'activation_eigenvectors', key: 'activationEigenvectors', shape: (_r, c) => [c, c] },
  { part: 'gradient_eigenvectors', key: 'gradientEigenvectors', shape: (r) => [r, r] },
  { part: 'activation_eigenvalues', key: 'activationEigenvalues', shape: (_r, c) => [c] },
  { part: 'gradient_eigenvalues', key: 'gradientEigenvalues', shape: (r) => [r] },
  { part: 'lambda', key: 'lambda', shape: (r, c) => [r, c] },
];

/** Writes the factors (float64 values stored as F32, the precision they are scored in). */
export function writeEkfacFactors(path: string, factors: EkfacFactors): void {
  const tensors: Record<string, TensorToWrite> = {};
  for (const t of factors.tensors) {
    for (const p of PARTS) tensors[`${t.name}.${p.part}`] = { dtype: 'F32', shape: p.shape(t.rows, t.cols), data: t[p.key] as Float64Array };
  }
  writeSafetensors(path, tensors, {
    format: EKFAC_FORMAT,
    settings: canonicalJson(factors.settings),
    tensors: JSON.stringify(factors.tensors.map((t) => t.name)),
  });
}

function parseJson(text: string | undefined, file: string, field: string): unknown {
  if (text === undefined) throw new TdaError('is missing from the metadata', { file, field });
  try {
    return JSON.parse(text);
  } catch {
    throw new TdaError('is not valid JSON', { file, field });
  }
}

function readSettings(f: SafetensorsFile): EkfacFactorSettings {
  const s = parseJson(f.metadata.settings, f.path, 'settings') as EkfacFactorSettings;
  if (typeof s !== 'object' || s === null) throw new TdaError('is not an object', { file: f.path, field: 'settings' });
  if (!FISHER_KINDS.includes(s.fisher)) throw new TdaError(`fisher must be one of ${FISHER_KINDS.join(', ')}, got ${JSON.stringify(s.fisher)}`, { file: f.path, field: 'settings.fisher' });
  if (s.mask !== 'response' && s.mask !== 'full') throw new TdaError(`mask must be response or full, got ${JSON.stringify(s.mask)}`, { file: f.path, field: 'settings.mask' });
  return s;
}

/** Reads a factor file, checking its format, every tensor's presence, shape and values. */
export function readEkfacFactors(path: string): EkfacFactors {
  const f = SafetensorsFile.open(path);
  try {
    if (f.metadata.format !== EKFAC_FORMAT) {
      throw new TdaError(`is ${JSON.stringify(f.metadata.format)}, not an EK-FAC factor file (${EKFAC_FORMAT}; make one with tda-lab ekfac-factors)`, { file: path, field: 'format' });
    }
    const settings = readSettings(f);
    const names = parseJson(f.metadata.tensors, path, 'tensors');
    if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string')) {
      throw new TdaError('must be a non-empty list of adapter keys', { file: path, field: 'tensors' });
    }
    const tensors = (names as string[]).map((name) => {
      const lambdaName = `${name}.lambda`;
      if (!f.has(lambdaName)) throw new TdaError(`factors of LoRA tensor ${name} are missing`, { file: path, field: lambdaName });
      const shape = f.info(lambdaName).shape;
      if (shape.length !== 2) throw new TdaError(`shape [${shape}] is not [rows, cols]`, { file: path, field: lambdaName });
      const [rows, cols] = shape;
      const t = { name, rows, cols } as EkfacTensorFactors;
      for (const p of PARTS) {
        const field = `${name}.${p.part}`;
        if (!f.has(field)) throw new TdaError(`is missing (factors of LoRA tensor ${name})`, { file: path, field });
        const want = p.shape(rows, cols);
        const got = f.info(field).shape;
        if (got.join() !== want.join()) throw new TdaError(`shape [${got}] is not [${want}] (the tensor is [${rows}, ${cols}])`, { file: path, field });
        const data = Float64Array.from(f.readFloat32(field));
        const bad = data.findIndex((v) => !Number.isFinite(v));
        if (bad >= 0) throw new TdaError(`has a non-finite value (${data[bad]}) at ${bad}`, { file: path, field });
        (t as unknown as Record<string, unknown>)[p.key] = data;
      }
      return t;
    });
    return { settings, tensors };
  } finally {
    f.close();
  }
}
