import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { baseCorpus, DEFAULT_BASE_SPEC, EMBEDDED_DIR, loadEmbeddedDefault, trainBaseModel, TRAINING_RECORD } from '../../src/experiments/embedded';
import { makeWorld, worldTokenizer } from '../../src/experiments/world';
import { tmpDir } from '../helpers/fixtures';

describe('embedded default base model', function () {
  this.timeout(120000);

  it('the shipped model loads, matches its tokenizer, and was trained on the corpus the code generates', () => {
    const record = JSON.parse(fs.readFileSync(path.join(EMBEDDED_DIR, TRAINING_RECORD), 'utf8'));
    const env = loadEmbeddedDefault();
    try {
      assert.equal(env.model.config.vocabSize, env.tokenizer.vocabSize);
      assert.equal(env.model.config.vocabSize, worldTokenizer(makeWorld(record.spec.worldSeed)).vocabSize);
      const corpus = baseCorpus(env.world, record.spec);
      const hash = crypto.createHash('sha256').update(corpus.join('\n')).digest('hex');
      assert.equal(hash, record.corpusSha256, 'data generation changed since the model was trained: run `npm run train-base`');
      assert.ok(record.factRecall.profession > 0.9, `the base model knows the facts: ${JSON.stringify(record.factRecall)}`);
    } finally {
      env.model.dispose();
    }
  });

  it('regenerates bit-for-bit from its seed', () => {
    const spec = { ...DEFAULT_BASE_SPEC, steps: 2, batchSize: 8, hiddenSize: 16, intermediateSize: 32, numLayers: 1, numHeads: 2 };
    const dirs = [tmpDir(), tmpDir()];
    for (const d of dirs) trainBaseModel(d, spec);
    const bytes = dirs.map((d) => fs.readFileSync(path.join(d, 'model.safetensors')));
    assert.ok(bytes[0].equals(bytes[1]), 'two runs with the same seed must write identical weights');
    const other = tmpDir();
    trainBaseModel(other, { ...spec, trainSeed: 1 });
    assert.ok(!fs.readFileSync(path.join(other, 'model.safetensors')).equals(bytes[0]), 'another seed gives other weights');
    for (const d of [...dirs, other]) fs.rmSync(d, { recursive: true, force: true });
  });
});
