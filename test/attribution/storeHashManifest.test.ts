import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  canonicalJson,
  hashAdapterDir,
  hashDataset,
  hashFile,
  hashModelDir,
  MANIFEST_FILE,
  normalizeSettings,
  readManifest,
  settingsDiff,
  StoreSettings,
  writeManifest,
} from '../../src/gradients/store';
import { newManifest, parseManifest } from '../../src/gradients/store/manifest';
import { SafetensorsFile } from '../../src/io/safetensors';
import { writeShardedSafetensors } from '../../src/io/weights';
import { saveAdapter } from '../../src/model/adapter';
import { tempDirs, throwsTda } from '../helpers/errors';
import { randomAdapter, randomExamples, TINY_MODEL } from './storeFixture';
import { writeRandomCheckpoint } from '../../src/model/synthetic';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('attribution/store: content hashes', () => {
  const tmp = tempDirs('tda-hash-');
  afterEach(() => tmp.cleanup());

  it('canonical JSON sorts keys at every level', () => {
    assert.equal(canonicalJson({ b: 1, a: [{ d: null, c: 'x' }, true] }), '{"a":[{"c":"x","d":null},true],"b":1}');
    assert.throws(() => canonicalJson({ a: NaN }), /non-finite/);
  });

  it('hashes files in pieces, equal to hashing the whole content', () => {
    const file = path.join(tmp.make(), 'big.bin');
    const bytes = Buffer.alloc(9 * 1024 * 1024 + 123); // spans two 8 MB pieces
    for (let i = 0; i < bytes.length; i += 4096) bytes[i] = i % 251;
    fs.writeFileSync(file, bytes);
    assert.equal(hashFile(file), sha(bytes));
  });

  it('hashes a dataset by its token ids and prompt lengths, in order', () => {
    const ex = randomExamples(5, 1);
    const h = hashDataset(ex);
    assert.match(h, /^[0-9a-f]{64}$/);
    assert.equal(hashDataset(structuredClone(ex)), h);
    assert.equal(h, sha(canonicalJson(ex.map((e) => ({ input_ids: e.inputIds, prompt_length: e.promptLength })))));
    const moreIds = structuredClone(ex);
    moreIds[2].inputIds[0] += 1;
    const prompt = structuredClone(ex);
    prompt[4].promptLength += 1;
    const others = [moreIds, prompt, [...ex].reverse(), ex.slice(0, 4)].map(hashDataset);
    assert.equal(new Set([h, ...others]).size, 5);
    throwsTda(() => hashDataset([{ inputIds: [1, 2], promptLength: 1.5 }]), 'example 0');
  });

  it('hashes a model directory: config values and weight bytes, single file or sharded', () => {
    const dir = tmp.make();
    writeRandomCheckpoint(dir, TINY_MODEL, 1);
    const h = hashModelDir(dir);
    // Reformatting config.json keeps the hash; changing a value does not.
    const configFile = path.join(dir, 'config.json');
    const config = JSON.parse(fs.readFileSync(configFile, 'utf8'));
    fs.writeFileSync(configFile, JSON.stringify(config, null, 4));
    assert.equal(hashModelDir(dir), h);
    fs.writeFileSync(configFile, JSON.stringify({ ...config, rope_theta: 500000 }));
    assert.notEqual(hashModelDir(dir), h);
    fs.writeFileSync(configFile, JSON.stringify(config));
    // One weight bit.
    const weights = path.join(dir, 'model.safetensors');
    const bytes = fs.readFileSync(weights);
    bytes[bytes.length - 1] ^= 1;
    fs.writeFileSync(weights, bytes);
    assert.notEqual(hashModelDir(dir), h);
    bytes[bytes.length - 1] ^= 1;
    fs.writeFileSync(weights, bytes);
    assert.equal(hashModelDir(dir), h);

    // The same weights sharded: hashed through the index, every shard counts.
    const sharded = tmp.make();
    fs.copyFileSync(configFile, path.join(sharded, 'config.json'));
    const st = SafetensorsFile.open(weights);
    const tensors = Object.fromEntries(st.names().map((n) => [n, { shape: st.info(n).shape, data: st.readFloat32(n) }]));
    st.close();
    const { shards } = writeShardedSafetensors(sharded, tensors, { maxShardBytes: 20_000 });
    assert.ok(shards.length > 2);
    const hs = hashModelDir(sharded);
    assert.notEqual(hs, h);
    const last = fs.readFileSync(shards[1]);
    last[last.length - 1] ^= 1;
    fs.writeFileSync(shards[1], last);
    assert.notEqual(hashModelDir(sharded), hs);
    fs.rmSync(shards[2]);
    throwsTda(() => hashModelDir(sharded), path.basename(shards[2]));
    throwsTda(() => hashModelDir(tmp.make()), 'config.json');
  });

  it('hashes an adapter directory: its config and its weights', () => {
    const a = tmp.make();
    const b = tmp.make();
    saveAdapter(a, randomAdapter(1));
    saveAdapter(b, randomAdapter(1));
    assert.equal(hashAdapterDir(a), hashAdapterDir(b));
    saveAdapter(b, randomAdapter(2));
    assert.notEqual(hashAdapterDir(a), hashAdapterDir(b));
    const alpha = randomAdapter(1);
    alpha.config = { ...alpha.config, loraAlpha: 16, scaling: 4 };
    saveAdapter(b, alpha);
    assert.notEqual(hashAdapterDir(a), hashAdapterDir(b));
    fs.rmSync(path.join(b, 'adapter_model.safetensors'));
    throwsTda(() => hashAdapterDir(b), 'adapter_model.safetensors', 'not found');
  });
});

describe('attribution/store: manifest', () => {
  const tmp = tempDirs('tda-manifest-');
  afterEach(() => tmp.cleanup());
  const H = (c: string) => c.repeat(64);
  const base: StoreSettings = normalizeSettings({ modelHash: H('a'), adapterHash: H('b'), datasetHash: H('c'), n: 10, mask: 'response' });

  it('fills defaults and validates settings, naming the field', () => {
    assert.deepEqual(base, { modelHash: H('a'), adapterHash: H('b'), datasetHash: H('c'), n: 10, mask: 'response', dtype: 'F32', projection: null, shardSize: 256 });
    throwsTda(() => normalizeSettings({ ...base, mask: 'prompt' as 'full' }), "'mask'");
    throwsTda(() => normalizeSettings({ ...base, dtype: 'F64' as 'F32' }), "'dtype'", 'F32, F16, BF16');
    throwsTda(() => normalizeSettings({ ...base, modelHash: 'abc' }), "'modelHash'", 'sha256');
    throwsTda(() => normalizeSettings({ ...base, shardSize: 0 }), "'shardSize'");
    throwsTda(() => normalizeSettings({ ...base, projection: { kind: 'gaussian', dim: -1, seed: 0 } }), "'projection'", 'dim');
  });

  it('lists every differing setting, stored vs requested', () => {
    assert.deepEqual(settingsDiff(base, { ...base }), []);
    assert.deepEqual(
      settingsDiff(base, { ...base, modelHash: H('d'), mask: 'full', projection: { kind: 'rademacher', dim: 8, seed: 3 }, n: 11, dtype: 'F16', shardSize: 5 }),
      [
        `model hash: stored '${H('a')}', requested '${H('d')}'`,
        'dataset size: stored 10, requested 11',
        "label mask: stored 'response', requested 'full'",
        "storage dtype: stored 'F32', requested 'F16'",
        'projection: stored none, requested rademacher(dim=8, seed=3)',
        'shard size: stored 256, requested 5',
      ],
    );
    const g = { ...base, projection: { kind: 'gaussian' as const, dim: 8, seed: 3 } };
    assert.deepEqual(settingsDiff(g, { ...g, projection: { kind: 'gaussian', dim: 8, seed: 4 } }), [
      'projection: stored gaussian(dim=8, seed=3), requested gaussian(dim=8, seed=4)',
    ]);
  });

  it('is written atomically and read back with validation', () => {
    const dir = tmp.make();
    const m = newManifest({ ...base, shardSize: 4 });
    m.blocks = [{ name: 'x.lora_A.weight', shape: [2, 3], dim: 6 }];
    m.shards = [{ index: 2, start: 8, count: 2, file: 'shard-00002.safetensors', bytes: 100, sha256: H('e') }];
    writeManifest(dir, m);
    assert.deepEqual(fs.readdirSync(dir), [MANIFEST_FILE]);
    assert.deepEqual(readManifest(dir), m);
    const file = path.join(dir, MANIFEST_FILE);
    const bad = (edit: (j: Record<string, unknown>) => void, ...fragments: string[]) => {
      const j = JSON.parse(JSON.stringify(m));
      edit(j);
      throwsTda(() => parseManifest(j, file), file, ...fragments);
    };
    bad((j) => (j.version = 2), "'version'", 'version 2');
    bad((j) => (j.format = 'other'), "'format'");
    bad((j) => ((j.settings as StoreSettings).mask = 'x' as 'full'), "'settings.mask'");
    bad((j) => ((j.shards as { count: number }[])[0].count = 4), "'shards[0]'", 'start/count');
    bad((j) => ((j.shards as { index: number }[])[0].index = 3), "'shards[0]'", 'below 3');
    bad((j) => ((j.blocks as { dim: number }[])[0].dim = 5), "'blocks[0]'", 'does not match');
    fs.writeFileSync(file, '{"format": ');
    throwsTda(() => readManifest(dir), file, 'cannot read manifest');
  });
});
