/**
 * Fuzzing the model-side readers: config.json (alone and loaded with the reference weights),
 * adapter_config.json with its tensors, and sharded checkpoints
 * (model.safetensors.index.json plus shard headers).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { loadAdapter, readLoraConfig } from '../../src/model/adapter';
import { readModelConfig, SUPPORTED_MODEL_TYPES } from '../../src/model/config';
import { linearShape } from '../../src/model/modules';
import { ModelConfig } from '../../src/model/types';
import { LlamaModel } from '../../src/model/llama';
import { openWeights, writeShardedSafetensors } from '../../src/io/weights';
import { SafetensorsFile } from '../../src/io/safetensors';
import { DTYPE_BYTES } from '../../src/io/dtype';
import { FIXTURE, tempDirs } from '../helpers/errors';
import { assertMixed, sometimesBytesArb, expectErrorOrValid, fuzzRuns, jsonPlanArb, mutateJson, mutateText, newOutcome } from './mutate';
import { joinSafetensors, relayout, SAFETENSORS_VALUES, splitSafetensors } from './safetensorsFiles';

const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));
const isPosInt = (v: unknown) => Number.isSafeInteger(v) && (v as number) > 0;

/** What a parsed config promises the model code. */
function checkModelConfig(c: ModelConfig): void {
  assert.ok((SUPPORTED_MODEL_TYPES as readonly string[]).includes(c.modelType));
  for (const k of ['hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'vocabSize', 'maxPositionEmbeddings'] as const) {
    assert.ok(isPosInt(c[k]), `${k} = ${c[k]} is not a positive integer`);
  }
  assert.equal(c.numHeads % c.numKvHeads, 0);
  for (const k of ['rmsNormEps', 'ropeTheta'] as const) assert.ok(Number.isFinite(c[k]) && c[k] > 0, `${k} = ${c[k]}`);
  for (const k of ['tieWordEmbeddings', 'qkvBias', 'oBias', 'mlpBias'] as const) assert.equal(typeof c[k], 'boolean');
  assert.ok(c.slidingWindow === null || isPosInt(c.slidingWindow));
}

const CONFIG_VALUES: unknown[] = ['llama', 'mistral', 'qwen2', 'gpt2', 'silu', 'gelu', { rope_type: 'default' }, { type: 'linear', factor: 2 }, 4, 64, 128, 3, 1e-5];
const ADAPTER_VALUES: unknown[] = ['LORA', 'PREFIX_TUNING', ['q_proj'], ['lm_head'], 'all-linear', '.*q_proj', '(', ['q_proj', 'v_proj', 'k_proj'], [0, 1], 7, 'none', 'all', 16, 0.1];

describe('fuzz: model readers', function () {
  const tmp = tempDirs('tda-fuzz-model-');
  let dir: string;
  const fixtureConfig = readModelConfig(FIXTURE);
  before(() => {
    dir = tmp.make();
  });
  after(() => tmp.cleanup());

  it('config.json: mutated fields and bytes end in a one-line TdaError or a config the model code can trust', () => {
    const base = readJson(path.join(FIXTURE, 'config.json'));
    const variants = [base, { ...base, model_type: 'mistral', sliding_window: 64 }, { ...base, model_type: 'qwen2', use_sliding_window: false, head_dim: 16 }];
    const file = path.join(dir, 'config.json');
    const outcome = newOutcome();
    fc.assert(
      fc.property(fc.nat(), jsonPlanArb, sometimesBytesArb, (which, plan, bytePlan) => {
        const text = mutateJson(variants[which % variants.length], plan, CONFIG_VALUES);
        fs.writeFileSync(file, bytePlan ? mutateText(text, bytePlan) : text);
        expectErrorOrValid(outcome, file, () => readModelConfig(file), checkModelConfig);
      }),
      fuzzRuns(1000),
    );
    assertMixed(outcome, 'config.json');
  });

  it('adapter_config.json: mutated fields end in a one-line TdaError or a usable LoRA config', () => {
    const base = readJson(path.join(FIXTURE, 'adapter', 'adapter_config.json'));
    const variants = [base, { ...base, target_modules: 'all-linear', use_rslora: true, layers_to_transform: [1] }, { ...base, target_modules: '.*\\.(q|v)_proj' }];
    const adapterDir = path.join(dir, 'adapter-config');
    fs.mkdirSync(adapterDir, { recursive: true });
    const file = path.join(adapterDir, 'adapter_config.json');
    const outcome = newOutcome();
    fc.assert(
      fc.property(fc.nat(), jsonPlanArb, sometimesBytesArb, (which, plan, bytePlan) => {
        const text = mutateJson(variants[which % variants.length], plan, ADAPTER_VALUES);
        fs.writeFileSync(file, bytePlan ? mutateText(text, bytePlan) : text);
        expectErrorOrValid(outcome, file, () => readLoraConfig(adapterDir), (c) => {
          assert.ok(isPosInt(c.r));
          assert.ok(Number.isFinite(c.loraAlpha) && Number.isFinite(c.scaling));
          assert.ok(c.loraDropout >= 0 && c.loraDropout < 1);
          if (typeof c.targetModules === 'string') assert.doesNotThrow(() => new RegExp(c.targetModules as string));
          else assert.ok(c.targetModules.length > 0 && c.targetModules.every((t) => typeof t === 'string' && t !== ''));
          assert.ok(c.layersToTransform === null || c.layersToTransform.every((l) => Number.isSafeInteger(l) && l >= 0));
        });
      }),
      fuzzRuns(800),
    );
    assertMixed(outcome, 'adapter_config.json');
  });

  it('adapter tensors: mutated config and safetensors header end in a one-line TdaError or factors shaped for the model', () => {
    const adapterDir = path.join(dir, 'adapter');
    fs.mkdirSync(adapterDir, { recursive: true });
    const configText = fs.readFileSync(path.join(FIXTURE, 'adapter', 'adapter_config.json'), 'utf8');
    const { header, data } = splitSafetensors(fs.readFileSync(path.join(FIXTURE, 'adapter', 'adapter_model.safetensors')));
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    const outcome = newOutcome();
    fc.assert(
      fc.property(jsonPlanArb, fc.boolean(), fc.nat(), (plan, mutateConfig, renameAt) => {
        // Half the cases also rename a tensor key, the other half change the config, so keys and targets disagree.
        const h = structuredClone(header);
        if (!mutateConfig && renameAt % 3 === 0) {
          const from = names[renameAt % names.length];
          const to = [from.replace('layers.0', 'layers.7'), from.replace('q_proj', 'lm_head'), from.replace('lora_A', 'lora_magnitude_vector'), from.replace('.weight', '.default.weight'), 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'][renameAt % 5];
          h[to] = h[from];
          if (to !== from) delete h[from];
        }
        fs.writeFileSync(path.join(adapterDir, 'adapter_config.json'), mutateConfig ? mutateJson(JSON.parse(configText), plan, ADAPTER_VALUES) : configText);
        const text = mutateConfig ? JSON.stringify(h) : mutateJson(h, plan, SAFETENSORS_VALUES);
        // Half the header mutations are laid out again, so a changed shape or dtype reaches the adapter's own checks.
        const again = renameAt % 2 ? relayout(text, data) : null;
        fs.writeFileSync(path.join(adapterDir, 'adapter_model.safetensors'), again ? joinSafetensors(again.headerText, again.data) : joinSafetensors(text, data));
        expectErrorOrValid(outcome, adapterDir, () => loadAdapter(adapterDir, fixtureConfig), (a) => {
          assert.ok(a.modules.length > 0);
          for (const m of a.modules) {
            const { inFeatures, outFeatures } = linearShape(fixtureConfig, m.module);
            assert.equal(m.A.length, a.config.r * inFeatures, `${m.path} A`);
            assert.equal(m.B.length, outFeatures * a.config.r, `${m.path} B`);
            assert.ok(m.layer >= 0 && m.layer < fixtureConfig.numLayers);
          }
        });
      }),
      fuzzRuns(800),
    );
    assertMixed(outcome, 'adapter tensors');
  });

  it('model loading: a mutated config.json next to the real weights ends in a one-line TdaError or a model of the configured size', function () {
    const modelDir = path.join(dir, 'model');
    fs.mkdirSync(modelDir);
    fs.symlinkSync(path.join(FIXTURE, 'model.safetensors'), path.join(modelDir, 'model.safetensors'));
    const base = readJson(path.join(FIXTURE, 'config.json'));
    const file = path.join(modelDir, 'config.json');
    const outcome = newOutcome();
    fc.assert(
      fc.property(jsonPlanArb, (plan) => {
        fs.writeFileSync(file, mutateJson(base, plan, [...CONFIG_VALUES, 97, 172, 2, 32, 16, 1e9]));
        expectErrorOrValid(outcome, modelDir, () => LlamaModel.load(modelDir), (model) => {
          try {
            checkModelConfig(model.config);
            assert.equal(model.config.vocabSize, fixtureConfig.vocabSize);
            assert.equal(model.config.hiddenSize, fixtureConfig.hiddenSize);
          } finally {
            model.dispose();
          }
        });
      }),
      fuzzRuns(200),
    );
    assertMixed(outcome, 'model loading');
  });

  it('sharded checkpoints: mutated index and shard headers end in a one-line TdaError or tensors that read back whole', () => {
    // A small sharded checkpoint written by the project itself, from the fixture's small tensors.
    const src = SafetensorsFile.open(path.join(FIXTURE, 'model.safetensors'));
    const small = src.names().filter((n) => src.info(n).byteLength <= 4096).slice(0, 6);
    const tensors = Object.fromEntries(small.map((n) => [n, { shape: src.info(n).shape, data: src.readFloat32(n) }]));
    src.close();
    const ckpt = path.join(dir, 'sharded');
    const { shards, index } = writeShardedSafetensors(ckpt, tensors, { maxShardBytes: 600 });
    assert.ok(shards.length >= 2);
    const indexJson = readJson(index);
    const shardBytes = shards.map((s) => fs.readFileSync(s));
    const shardValues = [...shards.map((s) => path.basename(s)), '../config.json', '/etc/passwd', 'missing.safetensors', '.', '..', 'model.safetensors.index.json'];
    const outcome = newOutcome();
    fc.assert(
      fc.property(jsonPlanArb, fc.nat(), fc.boolean(), (plan, which, mutateIndex) => {
        shards.forEach((s, i) => fs.writeFileSync(s, shardBytes[i]));
        if (mutateIndex) {
          fs.writeFileSync(index, mutateJson(indexJson, plan, shardValues));
        } else {
          fs.writeFileSync(index, JSON.stringify(indexJson));
          const i = which % shards.length;
          const { header, data } = splitSafetensors(shardBytes[i]);
          const text = mutateJson(header, plan, SAFETENSORS_VALUES);
          const again = which % 4 < 2 ? relayout(text, data) : null;
          fs.writeFileSync(shards[i], again ? joinSafetensors(again.headerText, again.data) : joinSafetensors(text, data));
        }
        expectErrorOrValid(outcome, ckpt, () => openWeights(ckpt), (w) => {
          try {
            for (const name of w.names()) {
              const info = w.info(name);
              assert.ok(info.file.startsWith(ckpt + path.sep), `${name} read from ${info.file}, outside the checkpoint`);
              assert.equal(info.byteLength, info.shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[info.dtype]);
              assert.equal(w.readFloat32(name).length, info.shape.reduce((a, d) => a * d, 1));
            }
          } finally {
            w.close();
          }
        });
      }),
      fuzzRuns(600),
    );
    assertMixed(outcome, 'sharded checkpoint');
  });
});
