import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { computeEkfacFactors, EkfacFactors } from '../../src/attribution/ekfacFactors';
import { readEkfacFactors, writeEkfacFactors } from '../../src/attribution/ekfacFile';
import { SafetensorsFile, TensorToWrite, writeSafetensors } from '../../src/io/safetensors';
import { sampleLabels } from '../../src/model/capture';
import { Rng } from '../../src/random';
import { throwsTda } from '../helpers/errors';
import { EkfacFixture, makeEkfacFixture } from './ekfacFixture';

const same = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.from(a).every((v, i) => v === b[i]);

describe('attribution/ekfacFactors: Fisher with sampled labels, and factor files', () => {
  let fx: EkfacFixture;
  let empirical: EkfacFactors;
  before(async () => {
    fx = makeEkfacFixture({ hiddenSize: 64, intermediateSize: 96, numLayers: 1, numHeads: 4, numKvHeads: 4, vocabSize: 97 }, { n: 6, r: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'] });
    empirical = await computeEkfacFactors(fx.model, fx.adapter, fx.examples, { batchSize: 4 });
  });
  after(() => fx.cleanup());

  it('sampled labels follow the softmax of each row', () => {
    const logits = Float32Array.of(0, 1, 2, -1, 3, 3, 3, 3);
    const rng = new Rng(4);
    const counts = [new Array(4).fill(0), new Array(4).fill(0)];
    const draws = 20000;
    for (let k = 0; k < draws; k++) sampleLabels(logits, 2, 4, rng).forEach((v, i) => counts[i][v]++);
    [0, 1].forEach((i) => {
      const row = Array.from(logits.subarray(4 * i, 4 * i + 4));
      const z = row.reduce((s, v) => s + Math.exp(v), 0);
      row.forEach((v, j) => assert.ok(Math.abs(counts[i][j] / draws - Math.exp(v) / z) < 0.015, `row ${i} label ${j}: ${counts[i][j] / draws} vs ${Math.exp(v) / z}`));
    });
  });

  it('the sampled Fisher is deterministic per seed, differs between seeds and from the empirical one; activations do not depend on labels', async () => {
    const a = await computeEkfacFactors(fx.model, fx.adapter, fx.examples, { batchSize: 4, fisher: 'sampled', seed: 3 });
    const b = await computeEkfacFactors(fx.model, fx.adapter, fx.examples, { batchSize: 4, fisher: 'sampled', seed: 3 });
    const c = await computeEkfacFactors(fx.model, fx.adapter, fx.examples, { batchSize: 4, fisher: 'sampled', seed: 4 });
    assert.deepEqual(a.settings, { ...empirical.settings, fisher: 'sampled', seed: 3 });
    a.tensors.forEach((t, l) => {
      assert.ok(same(t.gradientCovariance, b.tensors[l].gradientCovariance) && same(t.lambda, b.tensors[l].lambda), `${t.name}: same seed, same factors`);
      assert.ok(!same(t.gradientCovariance, c.tensors[l].gradientCovariance), `${t.name}: another seed, other labels`);
      assert.ok(!same(t.gradientCovariance, empirical.tensors[l].gradientCovariance), `${t.name}: sampled vs empirical`);
      assert.ok(!same(t.lambda, empirical.tensors[l].lambda), `${t.name}: lambda sampled vs empirical`);
      assert.ok(same(t.activationCovariance, empirical.tensors[l].activationCovariance), `${t.name}: activations are label-free`);
    });
  });

  it('a factor file keeps every factor and the settings', () => {
    const file = path.join(fx.dir, 'factors.safetensors');
    writeEkfacFactors(file, { ...empirical, settings: { ...empirical.settings, adapter: fx.adapterDir } });
    const back = readEkfacFactors(file);
    assert.deepEqual(back.settings, { ...empirical.settings, adapter: fx.adapterDir });
    assert.deepEqual(back.tensors.map((t) => t.name), empirical.tensors.map((t) => t.name));
    back.tensors.forEach((t, l) => {
      const e = empirical.tensors[l];
      for (const key of ['activationCovariance', 'gradientCovariance', 'activationEigenvectors', 'gradientEigenvectors', 'activationEigenvalues', 'gradientEigenvalues', 'lambda'] as const) {
        assert.ok(same(t[key], Float32Array.from(e[key])), `${t.name} ${key}`);
      }
    });
  });

  it('a damaged factor file is refused, naming the file and the field', () => {
    const file = path.join(fx.dir, 'good.safetensors');
    writeEkfacFactors(file, empirical);
    const f = SafetensorsFile.open(file);
    const tensors: Record<string, TensorToWrite> = {};
    for (const name of f.names()) tensors[name] = { shape: f.info(name).shape, data: f.readFloat32(name) };
    const metadata = f.metadata;
    f.close();
    const name = empirical.tensors[1].name;
    const variant = (label: string, edit: (t: Record<string, TensorToWrite>, m: Record<string, string>) => void) => {
      const t = { ...tensors };
      const m = { ...metadata };
      edit(t, m);
      const p = path.join(fx.dir, `${label}.safetensors`);
      writeSafetensors(p, t, m);
      return p;
    };
    const missing = variant('missing', (t) => delete t[`${name}.gradient_eigenvectors`]);
    throwsTda(() => readEkfacFactors(missing), missing, `${name}.gradient_eigenvectors`, 'missing');
    const shaped = variant('shaped', (t) => (t[`${name}.activation_covariance`] = { shape: [2, 2], data: new Float32Array(4) }));
    throwsTda(() => readEkfacFactors(shaped), shaped, `${name}.activation_covariance`, 'shape [2,2]');
    const nan = variant('nan', (t) => {
      const d = Float32Array.from(t[`${name}.lambda`].data as Float32Array);
      d[3] = NaN;
      t[`${name}.lambda`] = { shape: t[`${name}.lambda`].shape, data: d };
    });
    throwsTda(() => readEkfacFactors(nan), nan, `${name}.lambda`, 'non-finite');
    const format = variant('format', (_t, m) => (m.format = 'tda-lab.grads'));
    throwsTda(() => readEkfacFactors(format), format, 'format', 'not an EK-FAC factor file');
    const fisher = variant('fisher', (_t, m) => (m.settings = JSON.stringify({ ...JSON.parse(m.settings), fisher: 'true' })));
    throwsTda(() => readEkfacFactors(fisher), fisher, 'settings.fisher');
    fs.rmSync(missing);
  });
});
