/**
 * PEFT LoRA adapters: `adapter_config.json` + `adapter_model.safetensors`.
 *
 * Loading is strict on purpose: an adapter trained for another base model, or one using a
 * PEFT feature that changes the math (DoRA, per-module ranks, fan_in_fan_out, trained
 * biases, ...), must fail loudly instead of producing plausible but wrong attributions.
 */
import * as fs from 'fs';
import * as path from 'path';
import { showValue, TdaError } from '../errors';
import { openWeightsFile, WeightSource } from '../io/weights';
import { writeTextAtomic } from '../io/fsutil';
import { TensorToWrite, writeSafetensors } from '../io/safetensors';
import { isObject, readJsonFile } from './config';
import { Rng } from '../random';
import { allModules, linearShape, modulePath } from './modules';
import { LINEAR_MODULES, LinearModule, LoraConfig, ModelConfig } from './types';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const ADAPTER_BIN_FILE = 'adapter_model.bin';

export interface LoraModuleWeights {
  /** HF module path, e.g. `model.layers.0.self_attn.q_proj`. */
  path: string;
  layer: number;
  module: LinearModule;
  inFeatures: number;
  outFeatures: number;
  /** [r, in] row-major. */
  A: Float32Array;
  /** [out, r] row-major. */
  B: Float32Array;
}

export interface LoraAdapter {
  config: LoraConfig;
  /** In layer order, then q, k, v, o, gate, up, down. */
  modules: LoraModuleWeights[];
  dir?: string;
}

// ---------------------------------------------------------------- config

export function loraScaling(loraAlpha: number, r: number, useRslora: boolean): number {
  return useRslora ? loraAlpha / Math.sqrt(r) : loraAlpha / r;
}

export function readLoraConfig(dir: string): LoraConfig {
  const file = path.join(dir, ADAPTER_CONFIG_FILE);
  if (!fs.existsSync(file)) throw new TdaError('adapter config not found (expected a PEFT adapter directory)', { file });
  return parseLoraConfig(readJsonFile(file), file);
}

export function parseLoraConfig(json: unknown, file: string): LoraConfig {
  if (!isObject(json)) throw new TdaError('adapter config must be a JSON object', { file });
  const err = (field: string, message: string) => new TdaError(message, { file, field });

  if (json.peft_type !== 'LORA') throw err('peft_type', `only LORA adapters are supported, got ${showValue(json.peft_type)}`);
  rejectUnsupported(json, file);

  const r = json.r ?? 8; // PEFT default
  if (typeof r !== 'number' || !Number.isSafeInteger(r) || r <= 0) throw err('r', `must be a positive integer, got ${showValue(r)}`);
  const loraAlpha = json.lora_alpha ?? 8; // PEFT default
  if (typeof loraAlpha !== 'number' || !Number.isFinite(loraAlpha)) throw err('lora_alpha', `must be a number, got ${showValue(loraAlpha)}`);
  const loraDropout = json.lora_dropout ?? 0;
  if (typeof loraDropout !== 'number' || !(loraDropout >= 0 && loraDropout < 1)) {
    throw err('lora_dropout', `must be a number in [0, 1), got ${showValue(loraDropout)}`);
  }
  const useRslora = json.use_rslora ?? false;
  if (typeof useRslora !== 'boolean') throw err('use_rslora', `must be true or false, got ${showValue(useRslora)}`);
  const base = json.base_model_name_or_path ?? null;
  if (base !== null && typeof base !== 'string') throw err('base_model_name_or_path', 'must be a string or null');

  const targetModules = parseTargetModules(json.target_modules, file);
  const layersToTransform = parseLayers(json.layers_to_transform, file);
  // PEFT itself refuses this combination (layer filtering only applies to list targets).
  if (typeof targetModules === 'string' && layersToTransform !== null) {
    throw err('layers_to_transform', 'cannot be used when target_modules is a regex string (PEFT rejects this too)');
  }

  return {
    r,
    loraAlpha,
    targetModules,
    loraDropout,
    useRslora,
    layersToTransform,
    baseModelNameOrPath: base,
    scaling: loraScaling(loraAlpha, r, useRslora),
  };
}

/** PEFT options that change the adapted forward pass and that we do not implement. */
function rejectUnsupported(json: Record<string, unknown>, file: string): void {
  const fail = (field: string, why: string) => {
    throw new TdaError(`${why} is not supported`, { file, field });
  };
  if (json.use_dora === true) fail('use_dora', 'DoRA (use_dora: true)');
  if (isObject(json.rank_pattern) && Object.keys(json.rank_pattern).length) fail('rank_pattern', 'per-module ranks (rank_pattern)');
  if (isObject(json.alpha_pattern) && Object.keys(json.alpha_pattern).length) fail('alpha_pattern', 'per-module alphas (alpha_pattern)');
  if (json.fan_in_fan_out === true) fail('fan_in_fan_out', 'transposed (Conv1D) weights (fan_in_fan_out: true)');
  if (json.bias !== undefined && json.bias !== null && json.bias !== 'none') fail('bias', `training biases (bias: ${showValue(json.bias)})`);
  if (json.lora_bias === true) fail('lora_bias', 'a bias on lora_B (lora_bias: true)');
  if (Array.isArray(json.modules_to_save) && json.modules_to_save.length) fail('modules_to_save', 'fully trained extra modules (modules_to_save)');
  if (json.layer_replication !== undefined && json.layer_replication !== null) fail('layer_replication', 'layer replication');
  if (json.exclude_modules !== undefined && json.exclude_modules !== null && !(Array.isArray(json.exclude_modules) && !json.exclude_modules.length)) {
    fail('exclude_modules', 'exclude_modules');
  }
  if (Array.isArray(json.target_parameters) && json.target_parameters.length) fail('target_parameters', 'target_parameters');
}

function parseTargetModules(v: unknown, file: string): string[] | string {
  const field = 'target_modules';
  if (v === undefined || v === null) throw new TdaError('is missing; the adapter must name the modules it adapts', { file, field });
  if (v === 'all-linear') return [...LINEAR_MODULES]; // PEFT shorthand: every linear layer except the output head
  if (typeof v === 'string') {
    try {
      new RegExp(`^(?:${v})$`);
    } catch (e) {
      throw new TdaError(`invalid regular expression: ${(e as Error).message}`, { file, field });
    }
    return v;
  }
  if (!Array.isArray(v) || v.length === 0 || v.some((t) => typeof t !== 'string' || t === '')) {
    throw new TdaError('must be a non-empty list of module names or a regex string', { file, field });
  }
  const bad = v.find((t: string) => /(^|\.)(lm_head|embed_tokens)$/.test(t));
  if (bad) throw new TdaError(`adapting '${bad}' is not supported (only ${LINEAR_MODULES.join(', ')})`, { file, field });
  return [...(v as string[])];
}

function parseLayers(v: unknown, file: string): number[] | null {
  if (v === undefined || v === null) return null;
  const list = typeof v === 'number' ? [v] : v;
  if (!Array.isArray(list) || list.some((x) => typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0)) {
    throw new TdaError('must be a layer index or a list of layer indices', { file, field: 'layers_to_transform' });
  }
  return list.length ? [...list] : null; // PEFT treats [] as "no restriction"
}

// ---------------------------------------------------------------- module targeting

export { allModules, linearShape, modulePath };

const regexCache = new Map<string, RegExp>();

/**
 * PEFT's check_target_module_exists: a regex string must fullmatch the path; a list entry
 * matches the exact path or a `.entry` suffix, and only in the suffix case does
 * layers_to_transform then filter by the first `.<name>.<N>.` index in the path.
 */
export function moduleTargeted(config: LoraConfig, modulePath: string): boolean {
  const t = config.targetModules;
  if (typeof t === 'string') {
    let re = regexCache.get(t);
    if (!re) {
      re = new RegExp(`^(?:${t})$`);
      regexCache.set(t, re);
    }
    return re.test(modulePath) && layerAllowed(config, modulePath);
  }
  if (t.includes(modulePath)) return true;
  return t.some((name) => modulePath.endsWith(`.${name}`)) && layerAllowed(config, modulePath);
}

function layerAllowed(config: LoraConfig, modulePath: string): boolean {
  if (config.layersToTransform === null) return true;
  const m = /^.*\.[^.]*\.(\d+)\./.exec(modulePath);
  return m !== null && config.layersToTransform.includes(Number(m[1]));
}

/** Targeted modules of a model; error if the config targets nothing (PEFT errors too). */
function targetedModules(model: ModelConfig, config: LoraConfig, file?: string) {
  const list = allModules(model).filter((m) => moduleTargeted(config, m.path));
  if (!list.length) {
    throw new TdaError(`${showValue(config.targetModules)} matches no linear module of the model (e.g. model.layers.0.self_attn.q_proj)`, {
      file,
      field: 'target_modules',
    });
  }
  return list;
}

// ---------------------------------------------------------------- weights

/** PEFT tensor name of a module's A or B factor. */
export function adapterKey(modulePath: string, which: 'A' | 'B'): string {
  return `base_model.model.${modulePath}.lora_${which}.weight`;
}

const KEY_RE = /^base_model\.model\.(.+)\.lora_(A|B)(?:\.default)?\.weight$/;

export function loadAdapter(dir: string, model: ModelConfig): LoraAdapter {
  const file = path.join(dir, ADAPTER_WEIGHTS_FILE);
  if (!fs.existsSync(file)) {
    if (fs.existsSync(path.join(dir, ADAPTER_BIN_FILE))) {
      throw new TdaError(
        'only a pickled adapter_model.bin was found; convert to safetensors, e.g. reload it in Python and call ' +
          'model.save_pretrained(dir, safe_serialization=True)',
        { file: path.join(dir, ADAPTER_BIN_FILE) },
      );
    }
    throw new TdaError('adapter weights not found', { file });
  }
  const config = readLoraConfig(dir);
  const configFile = path.join(dir, ADAPTER_CONFIG_FILE);
  const targets = targetedModules(model, config, configFile);

  const src = openWeightsFile(file);
  try {
    const names = indexKeys(src, model, config, file);
    const modules = targets.map(({ path: p, layer, module }) => {
      const { inFeatures, outFeatures } = linearShape(model, module);
      const A = readFactor(src, names, p, 'A', [config.r, inFeatures], file);
      const B = readFactor(src, names, p, 'B', [outFeatures, config.r], file);
      return { path: p, layer, module, inFeatures, outFeatures, A, B };
    });
    return { config, modules, dir };
  } finally {
    src.close();
  }
}

/**
 * Maps `<path>/A|B` to the tensor name in the file, checking that every key is a LoRA factor
 * of a module this model has and the config targets.
 */
function indexKeys(src: WeightSource, model: ModelConfig, config: LoraConfig, file: string): Map<string, string> {
  const byFactor = new Map<string, string>();
  for (const name of src.names()) {
    if (name.includes('lora_magnitude_vector')) throw new TdaError('DoRA magnitude vectors are not supported', { file, field: name });
    const m = KEY_RE.exec(name);
    if (!m) throw new TdaError('unexpected tensor: not a LoRA factor of a linear layer (base_model.model.<module>.lora_A/B.weight)', { file, field: name });
    const [, p, which] = m;
    const mod = /^model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)$/.exec(p);
    const module = mod?.[3] as LinearModule | undefined;
    if (!mod || !module || !LINEAR_MODULES.includes(module) || modulePath(Number(mod[1]), module) !== p) {
      throw new TdaError(`unexpected tensor: '${p}' is not a linear layer of a ${model.modelType} model`, { file, field: name });
    }
    const layer = Number(mod[1]);
    if (layer >= model.numLayers) {
      throw new TdaError(`layer ${layer} does not exist: the base model has ${model.numLayers} layers`, { file, field: name });
    }
    if (!moduleTargeted(config, p)) {
      throw new TdaError(`module '${p}' is not targeted by target_modules/layers_to_transform in ${ADAPTER_CONFIG_FILE}`, { file, field: name });
    }
    const id = `${p}/${which}`;
    if (byFactor.has(id)) throw new TdaError(`duplicate LoRA factor (also stored as '${byFactor.get(id)}')`, { file, field: name });
    byFactor.set(id, name);
  }
  return byFactor;
}

function readFactor(src: WeightSource, names: Map<string, string>, p: string, which: 'A' | 'B', shape: number[], file: string): Float32Array {
  const name = names.get(`${p}/${which}`);
  if (name === undefined) throw new TdaError(`missing LoRA factor for targeted module ${p}`, { file, field: adapterKey(p, which) });
  const found = src.info(name).shape;
  if (found.length !== 2 || found[0] !== shape[0] || found[1] !== shape[1]) {
    const dims = which === 'A' ? '[r, in_features]' : '[out_features, r]';
    throw new TdaError(
      `shape [${found.join(', ')}] does not match the base model, expected [${shape.join(', ')}] = ${dims}; ` +
        'was this adapter trained on a different base model or with a different r?',
      { file, field: name },
    );
  }
  return src.readFloat32(name);
}

// ---------------------------------------------------------------- save / init

export function saveAdapter(dir: string, adapter: LoraAdapter): void {
  const c = adapter.config;
  const expected = loraScaling(c.loraAlpha, c.r, c.useRslora);
  if (c.scaling !== expected) {
    throw new TdaError(`scaling ${c.scaling} cannot be saved: PEFT derives it from lora_alpha/r (= ${expected})`, { field: 'scaling' });
  }
  const tensors: Record<string, TensorToWrite> = {};
  for (const m of adapter.modules) {
    checkLength(m.A, c.r * m.inFeatures, adapterKey(m.path, 'A'));
    checkLength(m.B, m.outFeatures * c.r, adapterKey(m.path, 'B'));
    tensors[adapterKey(m.path, 'A')] = { dtype: 'F32', shape: [c.r, m.inFeatures], data: m.A };
    tensors[adapterKey(m.path, 'B')] = { dtype: 'F32', shape: [m.outFeatures, c.r], data: m.B };
  }
  const json = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r: c.r,
    lora_alpha: c.loraAlpha,
    lora_dropout: c.loraDropout,
    target_modules: c.targetModules,
    use_rslora: c.useRslora,
    bias: 'none',
    base_model_name_or_path: c.baseModelNameOrPath,
    layers_to_transform: c.layersToTransform,
    use_dora: false,
    fan_in_fan_out: false,
  };
  fs.mkdirSync(dir, { recursive: true });
  const configFile = path.join(dir, ADAPTER_CONFIG_FILE);
  writeTextAtomic(configFile, JSON.stringify(json, null, 2) + '\n');
  writeSafetensors(path.join(dir, ADAPTER_WEIGHTS_FILE), tensors, { format: 'pt' });
}

function checkLength(data: Float32Array, n: number, name: string): void {
  if (data.length !== n) throw new TdaError(`has ${data.length} values, expected ${n}`, { field: name });
}

/**
 * PEFT's default init: A ~ kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0,
 * so the adapted model starts equal to the base model.
 */
export function initAdapter(model: ModelConfig, config: LoraConfig, seed: number): LoraAdapter {
  const rng = new Rng(seed);
  const modules = targetedModules(model, config).map(({ path: p, layer, module }) => {
    const { inFeatures, outFeatures } = linearShape(model, module);
    const bound = 1 / Math.sqrt(inFeatures);
    const A = new Float32Array(config.r * inFeatures);
    for (let i = 0; i < A.length; i++) A[i] = rng.uniform(-bound, bound);
    return { path: p, layer, module, inFeatures, outFeatures, A, B: new Float32Array(outFeatures * config.r) };
  });
  return { config: { ...config }, modules };
}
