import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TensorToWrite, writeSafetensors } from '../../src/io/safetensors';
import {
  adapterKey,
  initAdapter,
  linearShape,
  loadAdapter,
  LoraAdapter,
  moduleTargeted,
  parseLoraConfig,
  readLoraConfig,
  saveAdapter,
} from '../../src/model/adapter';
import { readModelConfig } from '../../src/model/config';
import { Rng } from '../../src/random';
import { LoraConfig } from '../../src/model/types';
import { FIXTURE, tempDirs, throwsTda, writeJson } from '../helpers/errors';

const ADAPTER = path.join(FIXTURE, 'adapter');
const MODEL = readModelConfig(FIXTURE); // hidden 64, 4 heads, 2 KV heads (headDim 16), 2 layers
const F = 'a/adapter_config.json';

const BASE_JSON = {
  peft_type: 'LORA',
  task_type: 'CAUSAL_LM',
  r: 4,
  lora_alpha: 8,
  lora_dropout: 0.0,
  target_modules: ['q_proj', 'v_proj'],
  bias: 'none',
  base_model_name_or_path: 'fixture-llama',
};

function cfg(over: Partial<LoraConfig> = {}): LoraConfig {
  return { ...parseLoraConfig(BASE_JSON, F), ...over };
}

/** Writes an adapter dir with the given config JSON and tensors (shape -> zero-filled data). */
function writeAdapter(dir: string, configJson: object, shapes: Record<string, number[]>): void {
  writeJson(path.join(dir, 'adapter_config.json'), configJson);
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, shape] of Object.entries(shapes)) {
    tensors[name] = { shape, data: Float32Array.from({ length: shape[0] * shape[1] }, (_, i) => i / 7) };
  }
  writeSafetensors(path.join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
}

/** Tensor shapes of a correct q_proj/v_proj r=4 adapter for the fixture model. */
function fixtureShapes(): Record<string, number[]> {
  const s: Record<string, number[]> = {};
  for (const layer of [0, 1]) {
    s[adapterKey(`model.layers.${layer}.self_attn.q_proj`, 'A')] = [4, 64];
    s[adapterKey(`model.layers.${layer}.self_attn.q_proj`, 'B')] = [64, 4];
    s[adapterKey(`model.layers.${layer}.self_attn.v_proj`, 'A')] = [4, 64];
    s[adapterKey(`model.layers.${layer}.self_attn.v_proj`, 'B')] = [32, 4];
  }
  return s;
}

describe('LoRA adapter config', () => {
  const tmp = tempDirs();
  afterEach(() => tmp.cleanup());

  it('reads the fixture adapter config', () => {
    assert.deepEqual(readLoraConfig(ADAPTER), {
      r: 4,
      loraAlpha: 8,
      targetModules: ['q_proj', 'v_proj'],
      loraDropout: 0,
      useRslora: false,
      layersToTransform: null,
      baseModelNameOrPath: 'fixture-llama',
      scaling: 2,
    });
  });

  it('uses PEFT defaults and rsLoRA scaling', () => {
    const c = parseLoraConfig({ peft_type: 'LORA', target_modules: ['q_proj'] }, F);
    assert.equal(c.r, 8);
    assert.equal(c.loraAlpha, 8);
    assert.equal(c.scaling, 1);
    assert.equal(c.loraDropout, 0);
    assert.equal(c.baseModelNameOrPath, null);
    assert.equal(parseLoraConfig({ ...BASE_JSON, r: 16, lora_alpha: 32, use_rslora: true }, F).scaling, 8);
    assert.deepEqual(parseLoraConfig({ ...BASE_JSON, layers_to_transform: 1 }, F).layersToTransform, [1]);
    // Empty patterns and use_dora: false are what PEFT writes by default.
    assert.equal(parseLoraConfig({ ...BASE_JSON, rank_pattern: {}, alpha_pattern: {}, use_dora: false, modules_to_save: null }, F).r, 4);
    assert.deepEqual(parseLoraConfig({ ...BASE_JSON, target_modules: 'all-linear' }, F).targetModules.length, 7);
  });

  it('rejects non-LoRA adapters and features that change the math, naming the field', () => {
    throwsTda(() => parseLoraConfig({ ...BASE_JSON, peft_type: 'PREFIX_TUNING' }, F), F, "'peft_type'", 'PREFIX_TUNING');
    throwsTda(() => parseLoraConfig({ ...BASE_JSON, use_dora: true }, F), F, "'use_dora'", 'DoRA');
    throwsTda(() => parseLoraConfig({ ...BASE_JSON, rank_pattern: { q_proj: 8 } }, F), F, "'rank_pattern'");
    throwsTda(() => parseLoraConfig({ ...BASE_JSON, alpha_pattern: { q_proj: 16 } }, F), F, "'alpha_pattern'");
    throwsTda(() => parseLoraConfig({ ...BASE_JSON, fan_in_fan_out: true }, F), F, "'fan_in_fan_out'");
    throwsTda(() => parseLoraConfig({ ...BASE_JSON, bias: 'lora_only' }, F), F, "'bias'", 'lora_only');
    throwsTda(() => parseLoraConfig({ ...BASE_JSON, modules_to_save: ['lm_head'] }, F), F, "'modules_to_save'");
  });

  it('rejects bad target_modules, r and layers_to_transform', () => {
    throwsTda(() => parseLoraConfig({ ...BASE_JSON, target_modules: null }, F), F, "'target_modules'", 'missing');
    const { target_modules: _, ...noTargets } = BASE_JSON;
    throwsTda(() => parseLoraConfig(noTargets, F), F, "'target_modules'");
    throwsTda(() => parseLoraConfig({ ...BASE_JSON, target_modules: [] }, F), F, "'target_modules'");
    throwsTda(() => parseLoraConfig({ ...BASE_JSON, target_modules: '(q_proj' }, F), F, "'target_modules'", 'regular expression');
    throwsTda(() => parseLoraConfig({ ...BASE_JSON, target_modules: ['q_proj', 'lm_head'] }, F), F, "'target_modules'", 'lm_head');
    throwsTda(() => parseLoraConfig({ ...BASE_JSON, r: 0 }, F), F, "'r'");
    throwsTda(() => parseLoraConfig({ ...BASE_JSON, layers_to_transform: [0, -1] }, F), F, "'layers_to_transform'");
    throwsTda(() => parseLoraConfig({ ...BASE_JSON, target_modules: '.*q_proj', layers_to_transform: [0] }, F), F, "'layers_to_transform'");
  });

  it('names the file when adapter_config.json is missing', () => {
    const dir = tmp.make();
    throwsTda(() => readLoraConfig(dir), path.join(dir, 'adapter_config.json'), 'not found');
  });
});

describe('LoRA module targeting (PEFT semantics)', () => {
  const q0 = 'model.layers.0.self_attn.q_proj';
  const q1 = 'model.layers.1.self_attn.q_proj';
  const v1 = 'model.layers.1.self_attn.v_proj';
  const down1 = 'model.layers.1.mlp.down_proj';

  it('list entries match the whole path or a dotted suffix', () => {
    const c = cfg({ targetModules: ['q_proj', 'mlp.down_proj'] });
    assert.equal(moduleTargeted(c, q0), true);
    assert.equal(moduleTargeted(c, down1), true);
    assert.equal(moduleTargeted(c, v1), false);
    assert.equal(moduleTargeted(cfg({ targetModules: ['proj'] }), q0), false, 'suffix must start at a dot');
    assert.equal(moduleTargeted(cfg({ targetModules: [q1] }), q1), true);
  });

  it('a regex string must match the full path', () => {
    const c = cfg({ targetModules: '.*\\.(q_proj|v_proj)$' });
    assert.equal(moduleTargeted(c, q0), true);
    assert.equal(moduleTargeted(c, v1), true);
    assert.equal(moduleTargeted(c, down1), false);
    const only1 = cfg({ targetModules: 'model\\.layers\\.1\\..*q_proj' });
    assert.equal(moduleTargeted(only1, q1), true);
    assert.equal(moduleTargeted(only1, q0), false);
    assert.equal(moduleTargeted(cfg({ targetModules: 'q_proj' }), q0), false, 'no partial regex match');
  });

  it('layers_to_transform restricts by layer index', () => {
    const c = cfg({ layersToTransform: [1] });
    assert.equal(moduleTargeted(c, q0), false);
    assert.equal(moduleTargeted(c, q1), true);
    assert.equal(moduleTargeted(c, v1), true);
  });

  it('linear shapes follow GQA', () => {
    assert.deepEqual(linearShape(MODEL, 'q_proj'), { inFeatures: 64, outFeatures: 64 });
    assert.deepEqual(linearShape(MODEL, 'k_proj'), { inFeatures: 64, outFeatures: 32 });
    assert.deepEqual(linearShape(MODEL, 'v_proj'), { inFeatures: 64, outFeatures: 32 });
    assert.deepEqual(linearShape(MODEL, 'o_proj'), { inFeatures: 64, outFeatures: 64 });
    assert.deepEqual(linearShape(MODEL, 'gate_proj'), { inFeatures: 64, outFeatures: 172 });
    assert.deepEqual(linearShape(MODEL, 'up_proj'), { inFeatures: 64, outFeatures: 172 });
    assert.deepEqual(linearShape(MODEL, 'down_proj'), { inFeatures: 172, outFeatures: 64 });
  });
});

describe('LoRA adapter weights', () => {
  const tmp = tempDirs();
  afterEach(() => tmp.cleanup());

  it('loads the fixture adapter', () => {
    const a = loadAdapter(ADAPTER, MODEL);
    assert.equal(a.config.scaling, 2);
    assert.equal(a.dir, ADAPTER);
    assert.deepEqual(
      a.modules.map((m) => [m.path, m.layer, m.module, m.inFeatures, m.outFeatures, m.A.length, m.B.length]),
      [
        ['model.layers.0.self_attn.q_proj', 0, 'q_proj', 64, 64, 4 * 64, 64 * 4],
        ['model.layers.0.self_attn.v_proj', 0, 'v_proj', 64, 32, 4 * 64, 32 * 4],
        ['model.layers.1.self_attn.q_proj', 1, 'q_proj', 64, 64, 4 * 64, 64 * 4],
        ['model.layers.1.self_attn.v_proj', 1, 'v_proj', 64, 32, 4 * 64, 32 * 4],
      ],
    );
    assert.ok(a.modules.every((m) => m.A.some((x) => x !== 0) && m.B.some((x) => x !== 0)));
  });

  it('accepts `.lora_A.default.weight` keys', () => {
    const dir = tmp.make();
    const shapes = Object.fromEntries(Object.entries(fixtureShapes()).map(([k, v]) => [k.replace(/\.weight$/, '.default.weight'), v]));
    writeAdapter(dir, BASE_JSON, shapes);
    assert.equal(loadAdapter(dir, MODEL).modules.length, 4);
  });

  it('loads a regex-targeted adapter and a layers_to_transform adapter', () => {
    const dir = tmp.make();
    const q1 = 'model.layers.1.self_attn.q_proj';
    const only = { [adapterKey(q1, 'A')]: [4, 64], [adapterKey(q1, 'B')]: [64, 4] };
    writeAdapter(dir, { ...BASE_JSON, target_modules: 'model\\.layers\\.1\\..*q_proj' }, only);
    assert.deepEqual(loadAdapter(dir, MODEL).modules.map((m) => m.path), [q1]);

    const dir2 = tmp.make();
    writeAdapter(dir2, { ...BASE_JSON, target_modules: ['q_proj'], layers_to_transform: [1] }, only);
    assert.deepEqual(loadAdapter(dir2, MODEL).modules.map((m) => m.path), [q1]);
  });

  it('rejects an adapter made for a different base model, naming the tensor and both shapes', () => {
    const dir = tmp.make();
    const shapes = fixtureShapes();
    for (const k of Object.keys(shapes)) shapes[k] = shapes[k].map((d) => (d === 64 ? 32 : d === 32 ? 16 : d)); // hidden 32
    writeAdapter(dir, BASE_JSON, shapes);
    const file = path.join(dir, 'adapter_model.safetensors');
    throwsTda(() => loadAdapter(dir, MODEL), file, `'${adapterKey('model.layers.0.self_attn.q_proj', 'A')}'`, '[4, 32]', 'expected [4, 64]');
  });

  it('rejects a B factor whose rank differs from r', () => {
    const dir = tmp.make();
    const shapes = fixtureShapes();
    shapes[adapterKey('model.layers.1.self_attn.v_proj', 'B')] = [32, 8];
    writeAdapter(dir, BASE_JSON, shapes);
    throwsTda(() => loadAdapter(dir, MODEL), `'${adapterKey('model.layers.1.self_attn.v_proj', 'B')}'`, '[32, 8]', 'expected [32, 4]');
  });

  it('rejects a missing B tensor, naming the expected key and the file', () => {
    const dir = tmp.make();
    const shapes = fixtureShapes();
    const key = adapterKey('model.layers.1.self_attn.q_proj', 'B');
    delete shapes[key];
    writeAdapter(dir, BASE_JSON, shapes);
    throwsTda(() => loadAdapter(dir, MODEL), path.join(dir, 'adapter_model.safetensors'), `'${key}'`, 'missing');
  });

  it('rejects keys for a nonexistent layer, an untargeted module or an unknown kind', () => {
    const cases: [string, number[], string][] = [
      [adapterKey('model.layers.7.self_attn.q_proj', 'A'), [4, 64], 'layer 7 does not exist'],
      [adapterKey('model.layers.0.self_attn.k_proj', 'A'), [4, 64], 'not targeted'],
      ['base_model.model.model.embed_tokens.lora_embedding_A', [4, 97], 'unexpected tensor'],
      [adapterKey('model.layers.0.self_attn.rotary', 'A'), [4, 64], 'not a linear layer'],
      ['base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector', [1, 64], 'DoRA'],
    ];
    for (const [key, shape, why] of cases) {
      const dir = tmp.make();
      writeAdapter(dir, BASE_JSON, { ...fixtureShapes(), [key]: shape });
      throwsTda(() => loadAdapter(dir, MODEL), path.join(dir, 'adapter_model.safetensors'), `'${key}'`, why);
    }
  });

  it('rejects a q_proj key outside layers_to_transform', () => {
    const dir = tmp.make();
    writeAdapter(dir, { ...BASE_JSON, layers_to_transform: [1] }, fixtureShapes());
    throwsTda(() => loadAdapter(dir, MODEL), `'${adapterKey('model.layers.0.self_attn.q_proj', 'A')}'`, 'not targeted');
  });

  it('rejects target_modules that match nothing in the model', () => {
    const dir = tmp.make();
    writeAdapter(dir, { ...BASE_JSON, target_modules: ['c_attn'] }, {});
    throwsTda(() => loadAdapter(dir, MODEL), path.join(dir, 'adapter_config.json'), "'target_modules'", 'matches no');
  });

  it('asks to convert an adapter_model.bin to safetensors', () => {
    const dir = tmp.make();
    writeJson(path.join(dir, 'adapter_config.json'), BASE_JSON);
    fs.writeFileSync(path.join(dir, 'adapter_model.bin'), 'pickle');
    throwsTda(() => loadAdapter(dir, MODEL), path.join(dir, 'adapter_model.bin'), 'convert to safetensors', 'safe_serialization=True');
    fs.rmSync(path.join(dir, 'adapter_model.bin'));
    throwsTda(() => loadAdapter(dir, MODEL), path.join(dir, 'adapter_model.safetensors'), 'not found');
  });
});

describe('LoRA adapter save / init', () => {
  const tmp = tempDirs();
  afterEach(() => tmp.cleanup());

  function assertSameAdapter(a: LoraAdapter, b: LoraAdapter): void {
    assert.deepEqual(b.config, a.config);
    assert.equal(b.modules.length, a.modules.length);
    a.modules.forEach((m, i) => {
      const n = b.modules[i];
      assert.deepEqual([n.path, n.layer, n.module, n.inFeatures, n.outFeatures], [m.path, m.layer, m.module, m.inFeatures, m.outFeatures]);
      assert.deepEqual(n.A, m.A);
      assert.deepEqual(n.B, m.B);
    });
  }

  it('round-trips the fixture adapter exactly, in PEFT format', () => {
    const a = loadAdapter(ADAPTER, MODEL);
    const dir = path.join(tmp.make(), 'nested', 'out');
    saveAdapter(dir, a);
    assertSameAdapter(a, loadAdapter(dir, MODEL));
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    assert.equal(json.peft_type, 'LORA');
    assert.equal(json.task_type, 'CAUSAL_LM');
    assert.equal(json.bias, 'none');
    assert.deepEqual(json.target_modules, ['q_proj', 'v_proj']);
    assert.equal(json.lora_alpha, 8);
    assert.equal(json.layers_to_transform, null);
  });

  it('round-trips a random all-linear rsLoRA adapter with a regex target', () => {
    const config = { ...cfg({ r: 3, loraAlpha: 6, useRslora: true, targetModules: '.*\\.(o_proj|gate_proj|up_proj|down_proj)' }) };
    config.scaling = 6 / Math.sqrt(3);
    const a = initAdapter(MODEL, config, 7);
    const rng = new Rng(1);
    for (const m of a.modules) for (let i = 0; i < m.B.length; i++) m.B[i] = rng.normal();
    assert.equal(a.modules.length, 8);
    const dir = tmp.make();
    saveAdapter(dir, a);
    assertSameAdapter(a, loadAdapter(dir, MODEL));
  });

  it('refuses to save a scaling PEFT cannot express', () => {
    const a = initAdapter(MODEL, cfg(), 0);
    a.config.scaling = 3;
    throwsTda(() => saveAdapter(tmp.make(), a), "'scaling'");
  });

  it('initializes like PEFT: A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0, seeded', () => {
    const c = cfg({ targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] });
    const a = initAdapter(MODEL, c, 42);
    assert.deepEqual(
      a.modules.slice(0, 7).map((m) => m.module),
      ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    );
    assert.equal(a.modules.length, 14);
    assert.equal(a.modules[7].layer, 1);
    for (const m of a.modules) {
      const bound = 1 / Math.sqrt(m.inFeatures);
      assert.equal(m.A.length, c.r * m.inFeatures);
      assert.ok(m.A.every((x) => Math.abs(x) <= bound));
      assert.ok(Math.max(...m.A.map(Math.abs)) > 0.8 * bound, 'spread over the whole interval');
      assert.ok(m.B.every((x) => x === 0));
      assert.equal(m.B.length, m.outFeatures * c.r);
    }
    assert.deepEqual(initAdapter(MODEL, c, 42).modules[3].A, a.modules[3].A);
    assert.notDeepEqual(initAdapter(MODEL, c, 43).modules[3].A, a.modules[3].A);
  });
});

describe('Rng', () => {
  it('is deterministic per seed and in range', () => {
    const a = new Rng(123);
    const b = new Rng(123);
    const xs = Array.from({ length: 1000 }, () => a.next());
    assert.deepEqual(xs, Array.from({ length: 1000 }, () => b.next()));
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    const other = new Rng(124);
    assert.notDeepEqual(xs.slice(0, 5), Array.from({ length: 5 }, () => other.next()));
    const r = new Rng(5);
    for (let i = 0; i < 1000; i++) {
      const k = r.int(7);
      assert.ok(Number.isInteger(k) && k >= 0 && k < 7);
      const u = r.uniform(-2, 3);
      assert.ok(u >= -2 && u < 3);
    }
    throwsTda(() => new Rng(1.5), "'seed'");
  });

  it('normal() has mean 0 and variance 1', () => {
    const r = new Rng(9);
    const n = 20000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const x = r.normal();
      s += x;
      s2 += x * x;
    }
    assert.ok(Math.abs(s / n) < 0.05);
    assert.ok(Math.abs(s2 / n - 1) < 0.05);
  });
});
