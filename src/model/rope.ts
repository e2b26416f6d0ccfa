/**
 * Rotary position embedding tables, with the frequency scalings Hugging Face checkpoints
 * ask for (`rope_scaling`: linear, dynamic NTK, llama3). Follows transformers'
 * `_compute_*_parameters` step by step, rounding to float32 where it computes in float32,
 * so the tables match a PyTorch model of the same checkpoint.
 */
import { ModelConfig } from './types';

type RopeConfig = Pick<ModelConfig, 'headDim' | 'ropeTheta' | 'ropeScaling' | 'maxPositionEmbeddings'>;

/** Plain RoPE: inv_freq_i = 1 / theta^(2i/d), i < d/2. */
function defaultInverseFrequencies(theta: number, d: number): Float32Array {
  const out = new Float32Array(d / 2);
  for (let i = 0; i < d / 2; i++) out[i] = Math.fround(1 / Math.pow(theta, (2 * i) / d));
  return out;
}

/**
 * inv_freq [d/2] of a sequence of `seqLen` tokens. Only `dynamic` depends on the length:
 * beyond max_position_embeddings it raises theta to
 * theta * (factor * seqLen / max - (factor - 1))^(d / (d - 2)).
 */
export function inverseFrequencies(cfg: RopeConfig, seqLen: number): Float32Array {
  const d = cfg.headDim;
  const s = cfg.ropeScaling;
  if (!s) return defaultInverseFrequencies(cfg.ropeTheta, d);
  switch (s.type) {
    case 'linear':
      return defaultInverseFrequencies(cfg.ropeTheta, d).map((f) => f / s.factor);
    case 'dynamic': {
      const max = cfg.maxPositionEmbeddings;
      const len = Math.max(seqLen, max);
      const theta = cfg.ropeTheta * Math.pow((s.factor * len) / max - (s.factor - 1), d / (d - 2));
      return defaultInverseFrequencies(theta, d);
    }
    case 'llama3': {
      // Wavelengths above original/low are divided by factor, below original/high kept, and
      // the band in between blended linearly in original/wavelength.
      const lowFreqWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
      const highFreqWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
      return defaultInverseFrequencies(cfg.ropeTheta, d).map((f) => {
        const wavelen = Math.fround((2 * Math.PI) / f);
        if (wavelen < highFreqWavelen) return f;
        if (wavelen > lowFreqWavelen) return f / s.factor;
        const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        return (1 - smooth) * (f / s.factor) + smooth * f;
      });
    }
  }
}

/** Whether the tables differ between examples of a batch (dynamic scaling past the trained length). */
function perExampleTables(cfg: RopeConfig, lengths: number[]): boolean {
  return cfg.ropeScaling?.type === 'dynamic' && lengths.some((n) => n > cfg.maxPositionEmbeddings);
}

/**
 * cos/sin tables for positions 0..T-1 in the HF layout cat(freqs, freqs): [rows, T, d] with
 * rows = 1 (shared by the batch) or, when dynamic scaling applies, one per example, each
 * from its own length. (transformers takes the longest position of the batch instead, which
 * would make an example's gradient depend on what it is batched with; its own length is
 * what transformers computes for the example alone.)
 */
export function rotaryTables(cfg: RopeConfig, lengths: number[], T: number): { rows: number; cos: Float32Array; sin: Float32Array } {
  const d = cfg.headDim;
  const half = d / 2;
  const rowLengths = perExampleTables(cfg, lengths) ? lengths : [Math.max(0, ...lengths)];
  const cos = new Float32Array(rowLengths.length * T * d);
  const sin = new Float32Array(rowLengths.length * T * d);
  rowLengths.forEach((len, r) => {
    const invFreq = inverseFrequencies(cfg, len);
    for (let t = 0; t < T; t++) {
      const at = (r * T + t) * d;
      for (let i = 0; i < half; i++) {
        // The angle is a float32 product in the reference too.
        const angle = Math.fround(t * invFreq[i]);
        cos[at + i] = cos[at + i + half] = Math.cos(angle);
        sin[at + i] = sin[at + i + half] = Math.sin(angle);
      }
    }
  });
  return { rows: rowLengths.length, cos, sin };
}
