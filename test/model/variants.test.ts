import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { makeBatch, TokenSequence } from '../../src/data/batch';
import { DType, SafetensorsFile, TensorToWrite, writeSafetensors } from '../../src/io/safetensors';
import { bf16ToF32, f16ToF32, f32ToBf16Bits, f32ToF16Bits } from '../../src/io/safetensors';
import { loadAdapter } from '../../src/model/adapter';
import { readModelConfig } from '../../src/model/config';
import { computeLosses } from '../../src/model/loss';
import { disposeBatchConstants, LlamaModel } from '../../src/model/llama';
import { hfConfigJson, llamaConfig, randomBaseTensors } from '../../src/model/synthetic';
import { ModelConfig } from '../../src/model/types';
import { FIXTURE_DIR, fixtureExpectations, fixtureSequences, fixtureTensors, relativeL2, Tensors, tmpDir } from '../helpers/fixtures';

function writeCheckpoint(dir: string, config: Record<string, unknown>, tensors: Tensors, dtype: DType = 'F32'): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  const out: Record<string, TensorToWrite> = {};
  for (const [n, t] of tensors) out[n] = { dtype, shape: t.shape, data: t.data };
  writeSafetensors(path.join(dir, 'model.safetensors'), out);
  return dir;
}

/** Final hidden states [B*T, H] as nested arrays. */
function hiddenOf(model: LlamaModel, seqs: TokenSequence[]): number[][] {
  const c = model.batchConstants(makeBatch(seqs, 'full'));
  const h = tf.tidy(() => model.hidden(c).arraySync());
  disposeBatchConstants(c);
  return h;
}

describe('checkpoint variants: half precision, tied embeddings, biases, sliding window', () => {
  let work: string;
  const fixtureConfig = JSON.parse(fs.readFileSync(path.join(FIXTURE_DIR, 'config.json'), 'utf8'));
  before(() => (work = tmpDir()));
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  for (const [dtype, round] of [
    ['BF16', (x: number) => bf16ToF32(f32ToBf16Bits(x))],
    ['F16', (x: number) => f16ToF32(f32ToF16Bits(x))],
  ] as const) {
    it(`loads ${dtype} weights as their exact float32 values`, () => {
      const tensors = fixtureTensors();
      const half = writeCheckpoint(path.join(work, dtype), fixtureConfig, tensors, dtype);
      // Reference: the same rounded values stored as F32.
      const rounded: Tensors = new Map([...tensors].map(([n, t]) => [n, { shape: t.shape, data: t.data.map(round) }]));
      const f32 = writeCheckpoint(path.join(work, `${dtype}-as-f32`), fixtureConfig, rounded, 'F32');
      const adapter = loadAdapter(path.join(FIXTURE_DIR, 'adapter'), readModelConfig(FIXTURE_DIR));
      const [mHalf, mRef] = [LlamaModel.load(half), LlamaModel.load(f32)];
      const lossHalf = computeLosses(mHalf, adapter, fixtureSequences());
      const lossRef = computeLosses(mRef, adapter, fixtureSequences());
      mHalf.dispose();
      mRef.dispose();
      assert.deepEqual([...lossHalf], [...lossRef]);
      // And close to the full-precision reference: rounding the weights moves the loss only a little.
      fixtureExpectations().example_losses.forEach((want, j) => assert.ok(Math.abs(lossHalf[j] - want) / want < 0.02, `${dtype} loss ${lossHalf[j]} vs ${want}`));
    });
  }

  for (const layout of ['both', 'single'] as const) it(`tied embeddings: the LM head is the embedding matrix (${layout} layout)`, () => {
    const tensors = fixtureTensors();
    tensors.delete('lm_head.weight');
    const dir = writeCheckpoint(path.join(work, `tied-${layout}`), { ...fixtureConfig, tie_word_embeddings: true }, tensors);
    const model = LlamaModel.load(dir, { layout });
    const seqs = fixtureSequences();
    const c = model.batchConstants(makeBatch(seqs));
    const [h, logits] = tf.tidy(() => {
      const hidden = model.hidden(c);
      return [hidden.arraySync(), model.logits(hidden).arraySync()];
    });
    disposeBatchConstants(c);
    model.dispose();
    const E = tensors.get('model.embed_tokens.weight')!;
    const H = fixtureConfig.hidden_size;
    for (const row of [0, 5, 17]) {
      const want = Array.from({ length: 97 }, (_, v) => h[row].reduce((s, x, i) => s + x * E.data[v * H + i], 0));
      assert.ok(relativeL2(logits[row], want) < 1e-5);
    }
  });

  it('a missing lm_head without tied embeddings, a missing layer weight, or a wrong shape is an error naming the tensor', () => {
    const noHead = fixtureTensors();
    noHead.delete('lm_head.weight');
    assert.throws(() => LlamaModel.load(writeCheckpoint(path.join(work, 'nohead'), fixtureConfig, noHead)), /nohead.*model\.safetensors.*'lm_head\.weight'.*missing/);
    const noUp = fixtureTensors();
    noUp.delete('model.layers.1.mlp.up_proj.weight');
    assert.throws(() => LlamaModel.load(writeCheckpoint(path.join(work, 'noup'), fixtureConfig, noUp)), /noup.*'model\.layers\.1\.mlp\.up_proj\.weight'.*missing/);
    const wrong = fixtureTensors();
    wrong.set('model.layers.0.self_attn.k_proj.weight', { shape: [64, 64], data: new Float32Array(64 * 64) });
    assert.throws(
      () => LlamaModel.load(writeCheckpoint(path.join(work, 'wrong'), fixtureConfig, wrong)),
      /wrong.*'model\.layers\.0\.self_attn\.k_proj\.weight'.*\[64,64\].*expected \[32,64\]/,
    );
  });

  it('attention biases are applied: a v_proj bias b equals an o_proj bias W_o b (attention rows sum to 1)', () => {
    const cfg: ModelConfig = llamaConfig({ hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4, numKvHeads: 2, vocabSize: 50, qkvBias: true, oBias: true });
    const base = randomBaseTensors(cfg, 11, 0.2);
    const json = { ...hfConfigJson(cfg), attention_bias: true };
    const withV: Tensors = new Map(base);
    const withO: Tensors = new Map(base);
    for (let l = 0; l < cfg.numLayers; l++) {
      const b = base.get(`model.layers.${l}.self_attn.v_proj.bias`)!.data;
      const Wo = base.get(`model.layers.${l}.self_attn.o_proj.weight`)!.data;
      const oBias = base.get(`model.layers.${l}.self_attn.o_proj.bias`)!.data;
      // v is repeated over the query heads of each group before o_proj sees it.
      const g = cfg.numHeads / cfg.numKvHeads;
      const d = cfg.headDim;
      const vExpanded = Array.from({ length: cfg.numHeads * d }, (_, i) => b[Math.floor(Math.floor(i / d) / g) * d + (i % d)]);
      const folded = oBias.map((o, r) => o + vExpanded.reduce((s, x, i) => s + x * Wo[r * cfg.numHeads * d + i], 0));
      withO.set(`model.layers.${l}.self_attn.v_proj.bias`, { shape: [b.length], data: new Float32Array(b.length) });
      withO.set(`model.layers.${l}.self_attn.o_proj.bias`, { shape: [folded.length], data: folded });
    }
    const mV = LlamaModel.load(writeCheckpoint(path.join(work, 'biasV'), json, withV));
    const mO = LlamaModel.load(writeCheckpoint(path.join(work, 'biasO'), json, withO));
    const seqs = [{ inputIds: [1, 4, 9, 16, 25, 36, 49], promptLength: 2 }];
    const hv = hiddenOf(mV, seqs).flat();
    const ho = hiddenOf(mO, seqs).flat();
    mV.dispose();
    mO.dispose();
    assert.ok(relativeL2(hv, ho) < 1e-4, `rel ${relativeL2(hv, ho)}`);
    // Control: dropping the v bias does change the output, so the comparison has teeth.
    const noBias: Tensors = new Map(withV);
    noBias.set('model.layers.0.self_attn.v_proj.bias', { shape: [cfg.numKvHeads * cfg.headDim], data: new Float32Array(cfg.numKvHeads * cfg.headDim) });
    const mN = LlamaModel.load(writeCheckpoint(path.join(work, 'biasN'), json, noBias));
    const hn = hiddenOf(mN, seqs).flat();
    mN.dispose();
    assert.ok(relativeL2(hn, hv) > 1e-3);
  });

  it('qwen2 checkpoints need their q/k/v biases', () => {
    const cfg = llamaConfig({ modelType: 'qwen2', hiddenSize: 32, intermediateSize: 48, numLayers: 1, numHeads: 4, numKvHeads: 2, vocabSize: 50, qkvBias: true });
    const t = randomBaseTensors(cfg, 3);
    const dir = writeCheckpoint(path.join(work, 'qwen'), hfConfigJson(cfg), t);
    const model = LlamaModel.load(dir);
    assert.ok(model.weights.layers[0].bias.k_proj);
    assert.equal(model.weights.layers[0].bias.o_proj, undefined);
    model.dispose();
    t.delete('model.layers.0.self_attn.k_proj.bias');
    assert.throws(() => LlamaModel.load(writeCheckpoint(path.join(work, 'qwen-nobias'), hfConfigJson(cfg), t)), /'model\.layers\.0\.self_attn\.k_proj\.bias'.*missing/);
  });

  it('mistral sliding window: a token sees only the last `window` positions', () => {
    const cfg = llamaConfig({ modelType: 'mistral', hiddenSize: 32, intermediateSize: 48, numLayers: 1, numHeads: 4, numKvHeads: 2, vocabSize: 50 });
    const tensors = randomBaseTensors(cfg, 5, 0.2);
    const load = (window: number | null, name: string) => LlamaModel.load(writeCheckpoint(path.join(work, name), { ...hfConfigJson(cfg), sliding_window: window }, tensors));
    const seqA = { inputIds: [3, 7, 11, 13, 17, 19], promptLength: 1 };
    const seqB = { inputIds: [42, 7, 11, 13, 17, 19], promptLength: 1 }; // differs only at position 0
    const wide = load(64, 'mistral-wide');
    const full = LlamaModel.load(writeCheckpoint(path.join(work, 'llama-same'), { ...hfConfigJson({ ...cfg, modelType: 'llama' }) }, tensors));
    assert.ok(relativeL2(hiddenOf(wide, [seqA]).flat(), hiddenOf(full, [seqA]).flat()) < 1e-6, 'a window longer than the sequence changes nothing');
    const narrow = load(2, 'mistral-narrow');
    const [a, b] = [hiddenOf(narrow, [seqA]), hiddenOf(narrow, [seqB])];
    // One layer, window 2: position t sees t-1 and t, so token 0 reaches positions 0 and 1 only.
    assert.ok(relativeL2(a[1], b[1]) > 1e-3);
    for (const t of [2, 3, 4, 5]) assert.ok(relativeL2(a[t], b[t]) < 1e-6, `position ${t} must not see token 0`);
    const [fa, fb] = [hiddenOf(full, [seqA]), hiddenOf(full, [seqB])];
    assert.ok(relativeL2(fa[5], fb[5]) > 1e-3, 'without a window the last position sees token 0');
    [wide, full, narrow].forEach((m) => m.dispose());
  });
});
