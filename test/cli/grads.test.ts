import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildWordLevelTokenizerConfig, buildWordLevelTokenizerJson } from '../../src/data/wordTokenizer';
import { SafetensorsFile } from '../../src/io/safetensors';
import { adapterKey, initAdapter, parseLoraConfig, saveAdapter } from '../../src/model/adapter';
import { llamaConfig, writeRandomCheckpoint } from '../../src/model/synthetic';
import { FIXTURE_DIR, fixtureExpectations, relativeL2, tmpDir } from '../helpers/fixtures';

const ROOT = path.join(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'tda-lab.js');

/** Runs the installed command line (bin -> dist), as a user would. */
function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, '--backend', 'wasm', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('tda-lab grads (command line)', () => {
  let work: string;
  before(() => {
    if (!fs.existsSync(path.join(ROOT, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
    work = tmpDir();
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('writes per-example gradients equal to the reference fixture', () => {
    const e = fixtureExpectations();
    const data = path.join(work, 'fixture.jsonl');
    fs.writeFileSync(data, e.input_ids.map((ids, j) => JSON.stringify({ input_ids: ids, prompt_length: e.prompt_lengths[j] })).join('\n'));
    const out = path.join(work, 'grads.safetensors');
    const r = cli(['grads', '--model', FIXTURE_DIR, '--adapter', path.join(FIXTURE_DIR, 'adapter'), '--data', data, '--out', out, '--batch-size', '2']);
    assert.equal(r.code, 0, r.stderr);
    const got = SafetensorsFile.open(out);
    const want = SafetensorsFile.open(path.join(FIXTURE_DIR, 'expected_grads.safetensors'));
    assert.deepEqual(got.info('loss').shape, [3]);
    got.readFloat32('loss').forEach((v, j) => assert.ok(Math.abs(v - e.example_losses[j]) / e.example_losses[j] < 1e-4));
    const keys = got.names().filter((k) => k !== 'loss');
    assert.equal(keys.length, 8);
    for (const key of keys) {
      const all = got.readFloat32(key);
      const shape = got.info(key).shape;
      assert.equal(shape[0], 3);
      const per = all.length / 3;
      for (let j = 0; j < 3; j++) {
        const err = relativeL2(all.subarray(j * per, (j + 1) * per), want.readFloat32(`example${j}.${key}`));
        assert.ok(err < 1e-3, `${key} example ${j}: ${err}`);
      }
    }
    assert.equal(got.metadata.mask, 'response');
    got.close();
    want.close();
  });

  it('tokenizes prompt/response lines with the model directory tokenizer.json', () => {
    const words = ['where', 'does', 'alice', 'live', '?', 'in', 'paris', '.', 'bob', 'rome'];
    const modelDir = path.join(work, 'wordmodel');
    writeRandomCheckpoint(modelDir, llamaConfig({ hiddenSize: 32, intermediateSize: 64, numLayers: 1, numHeads: 2, numKvHeads: 1, vocabSize: 14 }), 3);
    fs.writeFileSync(path.join(modelDir, 'tokenizer.json'), JSON.stringify(buildWordLevelTokenizerJson(words)));
    fs.writeFileSync(path.join(modelDir, 'tokenizer_config.json'), JSON.stringify(buildWordLevelTokenizerConfig()));
    const cfg = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
    const adapterDir = path.join(work, 'wordadapter');
    const lora = parseLoraConfig({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj', 'down_proj'] }, 'test');
    const { readModelConfig } = require('../../src/model/config');
    saveAdapter(adapterDir, initAdapter(readModelConfig(modelDir), lora, 5));
    const data = path.join(work, 'text.jsonl');
    fs.writeFileSync(data, [{ prompt: 'where does alice live ?', response: 'in paris .' }, { prompt: 'where does bob live ?', response: 'in rome .' }].map((o) => JSON.stringify(o)).join('\n'));
    const out = path.join(work, 'text.safetensors');
    const r = cli(['grads', '--model', modelDir, '--adapter', adapterDir, '--data', data, '--out', out, '--mask', 'full']);
    assert.equal(r.code, 0, r.stderr);
    const got = SafetensorsFile.open(out);
    assert.deepEqual(got.info(adapterKey('model.layers.0.mlp.down_proj', 'A')).shape, [2, 2, 64]);
    assert.deepEqual(got.info(adapterKey('model.layers.0.mlp.down_proj', 'B')).shape, [2, 32, 2]);
    assert.equal(got.metadata.mask, 'full');
    assert.ok(cfg.vocab_size === 14);
    got.close();
  });

  it('fails with a one-line error naming the problem', () => {
    const out = path.join(work, 'never.safetensors');
    const adapter = path.join(FIXTURE_DIR, 'adapter');
    const cases: { args: string[]; pattern: RegExp }[] = [
      { args: ['--model', path.join(work, 'nope'), '--adapter', adapter], pattern: /nope.*config\.json|config\.json.*nope/ },
      { args: ['--model', FIXTURE_DIR, '--adapter', adapter, '--data', path.join(work, 'missing.jsonl')], pattern: /missing\.jsonl/ },
    ];
    const bad = path.join(work, 'bad.jsonl');
    fs.writeFileSync(bad, '{"input_ids": [1, 2, 3], "prompt_length": 1}\n{not json\n');
    cases.push({ args: ['--model', FIXTURE_DIR, '--adapter', adapter, '--data', bad], pattern: /bad\.jsonl.*line 2/ });
    const outOfVocab = path.join(work, 'oov.jsonl');
    fs.writeFileSync(outOfVocab, '{"input_ids": [1, 2, 500], "prompt_length": 1}\n');
    cases.push({ args: ['--model', FIXTURE_DIR, '--adapter', adapter, '--data', outOfVocab], pattern: /oov\.jsonl.*500/ });
    // An adapter trained for a different base model (hidden 32 instead of 64).
    const otherDir = path.join(work, 'other-adapter');
    const { parseModelConfig } = require('../../src/model/config');
    const small = parseModelConfig({ model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 97 }, 'small');
    saveAdapter(otherDir, initAdapter(small, parseLoraConfig({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] }, 'x'), 1));
    const good = path.join(work, 'good.jsonl');
    fs.writeFileSync(good, '{"input_ids": [1, 2, 3], "prompt_length": 1}\n');
    cases.push({ args: ['--model', FIXTURE_DIR, '--adapter', otherDir, '--data', good], pattern: /other-adapter.*q_proj\.lora_A.*shape/ });
    for (const c of cases) {
      const args = ['grads', ...c.args];
      if (!args.includes('--data')) args.push('--data', good);
      const r = cli([...args, '--out', out]);
      assert.equal(r.code, 1, `expected failure for ${c.args.join(' ')}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
      assert.match(lines[0], /^tda-lab: /);
      assert.match(lines[0], c.pattern);
      assert.ok(!fs.existsSync(out), 'no output is written on failure');
    }
  });

  it('rejects a bad --mask before doing any work', () => {
    const r = cli(['grads', '--model', FIXTURE_DIR, '--adapter', 'x', '--data', 'y', '--out', 'z', '--mask', 'prompt']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /mask/);
  });
});
