import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSafetensors, SafetensorsFile } from '../../src/io/safetensors';
import { initAdapter, parseLoraConfig, saveAdapter, adapterKey } from '../../src/model/adapter';
import { momentsOf, OPTIMIZER_STATE_FILE, OptimizerState, readOptimizerState, writeOptimizerState } from '../../src/model/optimizerState';
import { llamaConfig } from '../../src/model/synthetic';
import { Rng } from '../../src/random';
import { tempDirs, throwsTda } from '../helpers/errors';

const cfg = llamaConfig({ hiddenSize: 8, intermediateSize: 16, numLayers: 2, numHeads: 2, numKvHeads: 2, vocabSize: 10 });
const lora = parseLoraConfig({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'down_proj'] }, 'test');

describe('model/optimizerState: Adam moments beside a PEFT adapter', () => {
  const dirs = tempDirs('tda-optstate-');
  afterEach(() => dirs.cleanup());

  /** An adapter folder and a state with random moments in its layout. */
  function checkpoint(): { dir: string; state: OptimizerState } {
    const dir = dirs.make();
    const adapter = initAdapter(cfg, lora, 1);
    saveAdapter(dir, adapter);
    const rng = new Rng(3);
    const moments = adapter.modules.flatMap((m) =>
      (['A', 'B'] as const).map((w) => {
        const shape = w === 'A' ? [2, m.inFeatures] : [m.outFeatures, 2];
        const size = shape[0] * shape[1];
        return { key: adapterKey(m.path, w), shape, expAvg: Float32Array.from({ length: size }, () => rng.normal()), expAvgSq: Float32Array.from({ length: size }, () => rng.next()) };
      }),
    );
    return { dir, state: { step: 12, beta1: 0.9, beta2: 0.999, eps: 1e-8, learningRate: 0.003, moments } };
  }

  it('round-trips: every tensor under <adapter key>.exp_avg / .exp_avg_sq in the adapter layout, scalars in the metadata', () => {
    const { dir, state } = checkpoint();
    writeOptimizerState(dir, state);
    const f = SafetensorsFile.open(path.join(dir, OPTIMIZER_STATE_FILE));
    const key = 'base_model.model.model.layers.1.mlp.down_proj.lora_A.weight';
    assert.deepEqual(f.info(`${key}.exp_avg_sq`).shape, [2, 16]);
    assert.deepEqual(f.metadata, { format: 'tda-lab.optimizer_state', step: '12', beta1: '0.9', beta2: '0.999', eps: '1e-8', learning_rate: '0.003' });
    f.close();
    const back = readOptimizerState(dir);
    assert.deepEqual([back.step, back.beta1, back.beta2, back.eps, back.learningRate], [12, 0.9, 0.999, 1e-8, 0.003]);
    assert.equal(back.moments.length, state.moments.length);
    for (const t of state.moments) {
      const got = momentsOf(back, t.key);
      assert.deepEqual(got.shape, t.shape);
      assert.deepEqual(got.expAvg, t.expAvg);
      assert.deepEqual(got.expAvgSq, t.expAvgSq);
    }
    throwsTda(() => momentsOf(back, 'nope.weight'), 'nope.weight', 'no moments');
  });

  it('refuses a missing file, a missing or extra tensor, a shape unlike the adapter, bad values and bad metadata, naming file and field', () => {
    const { dir, state } = checkpoint();
    const file = path.join(dir, OPTIMIZER_STATE_FILE);
    throwsTda(() => readOptimizerState(dir), file, 'optimizer state not found', 'convert_optimizer_state.py');
    const key = state.moments[1].key;
    const tensors = () => Object.fromEntries(state.moments.flatMap((t) => [[`${t.key}.exp_avg`, { shape: t.shape, data: t.expAvg }], [`${t.key}.exp_avg_sq`, { shape: t.shape, data: t.expAvgSq }]]));
    const meta = { format: 'tda-lab.optimizer_state', step: '3', beta1: '0.9', beta2: '0.999', eps: '1e-8', learning_rate: '0.01' };
    const write = (t: ReturnType<typeof tensors>, m: Record<string, string> = meta) => writeSafetensors(file, t, m);

    const missing = tensors();
    delete missing[`${key}.exp_avg_sq`];
    write(missing);
    throwsTda(() => readOptimizerState(dir), file, `'${key}.exp_avg_sq'`, 'missing');

    const extra = tensors();
    extra['base_model.model.lm_head.exp_avg'] = { shape: [1], data: new Float32Array(1) };
    write(extra);
    throwsTda(() => readOptimizerState(dir), file, "'base_model.model.lm_head.exp_avg'", 'not a moment');

    const transposed = tensors();
    transposed[`${key}.exp_avg`] = { shape: [...state.moments[1].shape].reverse(), data: state.moments[1].expAvg };
    write(transposed);
    throwsTda(() => readOptimizerState(dir), file, `'${key}.exp_avg'`, 'does not match the adapter');

    const negative = tensors();
    negative[`${key}.exp_avg_sq`] = { shape: state.moments[1].shape, data: state.moments[1].expAvgSq.map((x, j) => (j === 3 ? -1 : x)) };
    write(negative);
    throwsTda(() => readOptimizerState(dir), `'${key}.exp_avg_sq'`, 'value -1 at index 3');

    write(tensors(), { ...meta, beta2: 'x' });
    throwsTda(() => readOptimizerState(dir), file, "'beta2'", 'must hold a number');
    write(tensors(), { ...meta, beta1: '1' });
    throwsTda(() => readOptimizerState(dir), "'beta1'", '[0, 1)');
    write(tensors(), { ...meta, step: '1.5' });
    throwsTda(() => readOptimizerState(dir), "'step'", 'whole number');
    const { learning_rate: _lr, ...noLr } = meta;
    void _lr;
    write(tensors(), noLr);
    throwsTda(() => readOptimizerState(dir), "'learning_rate'");
    write(tensors(), { ...meta, format: 'other' });
    throwsTda(() => readOptimizerState(dir), "'format'");

    write(tensors());
    assert.equal(readOptimizerState(dir).step, 3, 'the same tensors with good metadata read');
    fs.rmSync(path.join(dir, 'adapter_model.safetensors'));
    throwsTda(() => readOptimizerState(dir), 'adapter_model.safetensors', 'adapter weights not found');
    throwsTda(() => writeOptimizerState(dir, { ...state, moments: [{ ...state.moments[0], expAvg: new Float32Array(1) }] }), `'${state.moments[0].key}.exp_avg'`, 'has 1 values');
    throwsTda(() => writeOptimizerState(dir, { ...state, eps: 0 }), "'eps'", 'positive');
  });
});
