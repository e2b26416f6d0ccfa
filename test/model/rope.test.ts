import * as assert from 'node:assert/strict';
import { inverseFrequencies, rotaryTables } from '../../src/model/rope';
import { RopeScaling } from '../../src/model/types';

/**
 * The rotary frequencies against direct transcriptions (in float64) of transformers'
 * modeling_rope_utils: _compute_default_rope_parameters, _compute_linear_scaling_rope_parameters,
 * _compute_dynamic_ntk_parameters and _compute_llama3_parameters.
 */
function hfDefault(base: number, dim: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < dim; i += 2) out.push(1.0 / base ** (i / dim));
  return out;
}

function hfLinear(base: number, dim: number, factor: number): number[] {
  return hfDefault(base, dim).map((f) => f / factor);
}

function hfDynamic(base: number, dim: number, factor: number, maxPositionEmbeddings: number, seqLen: number): number[] {
  seqLen = seqLen > maxPositionEmbeddings ? seqLen : maxPositionEmbeddings;
  base = base * ((factor * seqLen) / maxPositionEmbeddings - (factor - 1)) ** (dim / (dim - 2));
  return hfDefault(base, dim);
}

function hfLlama3(base: number, dim: number, factor: number, lowFreqFactor: number, highFreqFactor: number, oldContextLen: number): number[] {
  const lowFreqWavelen = oldContextLen / lowFreqFactor;
  const highFreqWavelen = oldContextLen / highFreqFactor;
  return hfDefault(base, dim).map((invFreq) => {
    const wavelen = (2 * Math.PI) / invFreq;
    const llama = wavelen > lowFreqWavelen ? invFreq / factor : invFreq;
    const smoothFactor = (oldContextLen / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    const smoothed = ((1 - smoothFactor) * llama) / factor + smoothFactor * llama;
    const isMedium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
    return isMedium ? smoothed : llama;
  });
}

/** Largest relative difference; float32 tables against float64 formulas. */
function maxRel(got: ArrayLike<number>, want: number[]): number {
  assert.equal(got.length, want.length);
  return Math.max(...want.map((w, i) => Math.abs(got[i] - w) / Math.abs(w)));
}

const cfg = (headDim: number, ropeTheta: number, ropeScaling: RopeScaling | null, maxPositionEmbeddings = 2048) => ({ headDim, ropeTheta, ropeScaling, maxPositionEmbeddings });

describe('rotary frequencies and tables', () => {
  it('plain RoPE: 1 / theta^(2i/d)', () => {
    for (const [d, theta] of [
      [64, 10000],
      [128, 1e6],
      [12, 10000],
    ]) {
      assert.ok(maxRel(inverseFrequencies(cfg(d, theta, null), 16), hfDefault(theta, d)) < 1e-6);
    }
  });

  it('linear: the frequencies divided by factor, i.e. position t becomes t / factor', () => {
    const scaled = cfg(64, 10000, { type: 'linear', factor: 4 });
    assert.ok(maxRel(inverseFrequencies(scaled, 16), hfLinear(10000, 64, 4)) < 1e-6);
    const T = 16;
    const a = rotaryTables(scaled, [T], T);
    const b = rotaryTables(cfg(64, 10000, null), [T], T);
    // Position 8 with factor 4 sits where position 2 sits without scaling.
    for (let i = 0; i < 64; i++) {
      assert.ok(Math.abs(a.cos[8 * 64 + i] - b.cos[2 * 64 + i]) < 1e-6);
      assert.ok(Math.abs(a.sin[8 * 64 + i] - b.sin[2 * 64 + i]) < 1e-6);
    }
  });

  it('dynamic NTK: theta unchanged up to max_position_embeddings, raised with the length beyond it', () => {
    const c = cfg(64, 10000, { type: 'dynamic', factor: 2 }, 32);
    for (const len of [1, 20, 32]) assert.ok(maxRel(inverseFrequencies(c, len), hfDefault(10000, 64)) < 1e-6, `length ${len}`);
    for (const len of [33, 50, 200]) assert.ok(maxRel(inverseFrequencies(c, len), hfDynamic(10000, 64, 2, 32, len)) < 1e-6, `length ${len}`);
    // The rescaling is real: at 200 tokens the lowest frequency is well below plain RoPE's.
    assert.ok(inverseFrequencies(c, 200)[31] < 0.5 * hfDefault(10000, 64)[31]);
  });

  it('dynamic NTK tables: one shared row within the trained length, else one row per example from its own length', () => {
    const c = cfg(8, 10000, { type: 'dynamic', factor: 2 }, 4);
    const shared = rotaryTables(c, [3, 4], 4);
    assert.equal(shared.rows, 1);
    const T = 10;
    const t = rotaryTables(c, [10, 3, 7], T);
    assert.equal(t.rows, 3);
    assert.equal(t.cos.length, 3 * T * 8);
    [10, 3, 7].forEach((len, row) => {
      const inv = hfDynamic(10000, 8, 2, 4, len);
      for (let pos = 0; pos < T; pos++) {
        for (let i = 0; i < 4; i++) {
          const angle = pos * inv[i];
          // HF layout cat(freqs, freqs): feature i and i + d/2 share an angle.
          for (const k of [i, i + 4]) {
            assert.ok(Math.abs(t.cos[(row * T + pos) * 8 + k] - Math.cos(angle)) < 1e-5, `row ${row} pos ${pos} feature ${k}`);
            assert.ok(Math.abs(t.sin[(row * T + pos) * 8 + k] - Math.sin(angle)) < 1e-5);
          }
        }
      }
    });
  });

  it('llama3 with Llama-3.2-1B\'s parameters: high frequencies kept, low ones divided by 32, the band between blended', () => {
    const s: RopeScaling = { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    const got = inverseFrequencies(cfg(64, 500000, s), 16);
    const want = hfLlama3(500000, 64, 32, 1, 4, 8192);
    assert.ok(maxRel(got, want) < 1e-6, `max rel ${maxRel(got, want)}`);
    // All three branches occur at these settings, so each is exercised.
    const plain = hfDefault(500000, 64);
    const kept = want.filter((w, i) => w === plain[i]).length;
    const divided = want.filter((w, i) => Math.abs(w - plain[i] / 32) < 1e-12 * plain[i]).length;
    assert.ok(kept > 0 && divided > 0 && kept + divided < want.length, `kept ${kept}, divided ${divided} of ${want.length}`);
  });

  it('llama3 with Llama-3.1-8B\'s parameters (factor 8, head_dim 128)', () => {
    const s: RopeScaling = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    assert.ok(maxRel(inverseFrequencies(cfg(128, 500000, s), 16), hfLlama3(500000, 128, 8, 1, 4, 8192)) < 1e-6);
  });
});
