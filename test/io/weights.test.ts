import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TdaError } from '../../src/errors';
import { SafetensorsFile, TensorToWrite, bf16ToF32, f16ToF32, f32ToBf16Bits, f32ToF16Bits } from '../../src/io/safetensors';
import { openWeights, openWeightsFile, writeShardedSafetensors } from '../../src/io/weights';

const FIXTURE_DIR = path.join(__dirname, '..', 'fixtures', 'llama-tiny');

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function expectError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TdaError, `expected TdaError, got ${e}`);
    assert.match(e.message, re);
    return true;
  });
}

function ramp(n: number, scale: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * scale);
}

// Six tensors of 400 bytes each: with maxShardBytes 800 they fill exactly three shards.
function checkpoint(): { tensors: Record<string, TensorToWrite>; expected: Record<string, Float32Array> } {
  const a = ramp(100, 1);
  const b = ramp(200, 3);
  const c = ramp(200, 1e5);
  const d = ramp(100, 0.01);
  const e = Float64Array.from(ramp(50, 7), (x) => x + 1e-9);
  const f = Int32Array.from({ length: 100 }, (_, i) => i * 1000 - 7);
  return {
    tensors: {
      'a.weight': { shape: [10, 10], data: a },
      'b.weight': { dtype: 'F16', shape: [200], data: b },
      'c.weight': { dtype: 'BF16', shape: [10, 20], data: c },
      'd.weight': { shape: [5, 20], data: d },
      'e.bias': { dtype: 'F64', shape: [50], data: e },
      'f.ids': { shape: [100], data: f },
    },
    expected: {
      'a.weight': a,
      'b.weight': Float32Array.from(b, (x) => f16ToF32(f32ToF16Bits(x))),
      'c.weight': Float32Array.from(c, (x) => bf16ToF32(f32ToBf16Bits(x))),
      'd.weight': d,
      'e.bias': Float32Array.from(e),
      'f.ids': Float32Array.from(f),
    },
  };
}

const SHARD = (i: number) => `model-0000${i}-of-00003.safetensors`;

describe('weights: sharded checkpoints', () => {
  it('writes three shards plus an index and reads every tensor back', () => {
    const { tensors, expected } = checkpoint();
    const out = writeShardedSafetensors(tmp, tensors, { maxShardBytes: 800 });
    assert.deepEqual(out.shards, [1, 2, 3].map((i) => path.join(tmp, SHARD(i))));
    assert.equal(out.index, path.join(tmp, 'model.safetensors.index.json'));
    assert.deepEqual(fs.readdirSync(tmp).sort(), [SHARD(1), SHARD(2), SHARD(3), 'model.safetensors.index.json']);
    const index = JSON.parse(fs.readFileSync(out.index, 'utf8'));
    assert.deepEqual(index.metadata, { total_size: 2400 });
    assert.deepEqual(index.weight_map, {
      'a.weight': SHARD(1),
      'b.weight': SHARD(1),
      'c.weight': SHARD(2),
      'd.weight': SHARD(2),
      'e.bias': SHARD(3),
      'f.ids': SHARD(3),
    });
    const shard2 = SafetensorsFile.open(out.shards[1]);
    assert.deepEqual(shard2.names(), ['c.weight', 'd.weight']);
    assert.deepEqual(shard2.metadata, { format: 'pt' });
    shard2.close();

    const w = openWeights(tmp);
    try {
      assert.deepEqual(w.names(), Object.keys(expected).sort());
      for (const [name, values] of Object.entries(expected)) {
        assert.ok(w.has(name));
        assert.deepEqual(w.readFloat32(name), values, name);
        assert.deepEqual(w.info(name).shape, tensors[name].shape);
        assert.equal(w.info(name).file, path.join(tmp, index.weight_map[name]));
      }
      assert.equal(w.info('c.weight').dtype, 'BF16');
      assert.ok(!w.has('zzz'));
      expectError(() => w.info('zzz'), /model\.safetensors\.index\.json: 'zzz': no such tensor/);
      expectError(() => w.readFloat32('zzz'), /'zzz': no such tensor/);
    } finally {
      w.close();
    }
  });

  it('puts a tensor larger than maxShardBytes in its own shard, with a custom prefix', () => {
    const out = writeShardedSafetensors(
      tmp,
      {
        small: { shape: [2], data: new Float32Array([1, 2]) },
        huge: { shape: [100], data: ramp(100, 1) },
        tiny: { shape: [1], data: new Float32Array([3]) },
      },
      { maxShardBytes: 64, prefix: 'adapter' },
    );
    assert.deepEqual(out.shards.map((s) => path.basename(s)), ['adapter-00001-of-00002.safetensors', 'adapter-00002-of-00002.safetensors']);
    const index = JSON.parse(fs.readFileSync(out.index, 'utf8'));
    assert.equal(path.basename(out.index), 'adapter.safetensors.index.json');
    assert.deepEqual(index.weight_map, {
      huge: 'adapter-00001-of-00002.safetensors',
      small: 'adapter-00002-of-00002.safetensors',
      tiny: 'adapter-00002-of-00002.safetensors',
    });
  });

  it('tensors made on write: the same files as eager data, each made once when written', () => {
    const values = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * k));
    const shapes: Record<string, number[]> = { a: [4, 8], b: [16], c: [2, 3, 5] };
    const eager: Record<string, TensorToWrite> = {};
    const lazy: Record<string, TensorToWrite> = {};
    const made: string[] = [];
    Object.entries(shapes).forEach(([name, shape], k) => {
      const n = shape.reduce((x, y) => x * y, 1);
      eager[name] = { dtype: 'BF16', shape, data: values(n, k + 1) };
      lazy[name] = {
        dtype: 'BF16',
        shape,
        data: () => {
          made.push(name);
          return values(n, k + 1);
        },
      };
    });
    writeShardedSafetensors(path.join(tmp, 'eager'), eager, { maxShardBytes: 70 });
    const out = writeShardedSafetensors(path.join(tmp, 'lazy'), lazy, { maxShardBytes: 70 });
    assert.equal(out.shards.length, 3);
    for (const f of [...out.shards.map((s) => path.basename(s)), 'model.safetensors.index.json']) {
      assert.deepEqual(fs.readFileSync(path.join(tmp, 'lazy', f)), fs.readFileSync(path.join(tmp, 'eager', f)), f);
    }
    assert.deepEqual(made, ['a', 'b', 'c']); // each made once, when written
    expectError(() => writeShardedSafetensors(path.join(tmp, 'x'), { t: { shape: [2], data: () => new Float32Array(2) } }, { maxShardBytes: 70 }), /'t'.*explicit dtype/);
    expectError(
      () => writeShardedSafetensors(path.join(tmp, 'y'), { t: { dtype: 'F32', shape: [3], data: () => new Float32Array(2) } }, { maxShardBytes: 70 }),
      /'t'.*2 elements but shape \[3\] needs 3/,
    );
  });

  it('index referencing a missing shard file names the shard', () => {
    writeShardedSafetensors(tmp, checkpoint().tensors, { maxShardBytes: 800 });
    fs.unlinkSync(path.join(tmp, SHARD(2)));
    expectError(() => openWeights(tmp), /model-00002-of-00003\.safetensors: 'c\.weight': shard file 'model-00002-of-00003\.safetensors' listed in model\.safetensors\.index\.json does not exist/);
  });

  it('index referencing a tensor absent from its shard names both', () => {
    writeShardedSafetensors(tmp, checkpoint().tensors, { maxShardBytes: 800 });
    const indexPath = path.join(tmp, 'model.safetensors.index.json');
    const index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
    index.weight_map['ghost.weight'] = SHARD(1);
    fs.writeFileSync(indexPath, JSON.stringify(index));
    expectError(() => openWeights(tmp), /model-00001-of-00003\.safetensors: 'ghost\.weight': tensor listed in model\.safetensors\.index\.json is missing from shard 'model-00001-of-00003\.safetensors'/);
  });

  it('malformed index: no weight_map, shard paths outside the directory, bad JSON', () => {
    const indexPath = path.join(tmp, 'model.safetensors.index.json');
    fs.writeFileSync(indexPath, JSON.stringify({ metadata: {} }));
    expectError(() => openWeights(tmp), /index\.json: 'weight_map': must be an object/);
    fs.writeFileSync(indexPath, JSON.stringify({ weight_map: { w: '../elsewhere.safetensors' } }));
    expectError(() => openWeights(tmp), /index\.json: 'weight_map\.w': shard must be a file name/);
    fs.writeFileSync(indexPath, '{oops');
    expectError(() => openWeights(tmp), /index\.json: cannot read shard index/);
  });

  it('a corrupt shard fails at open, naming the shard', () => {
    writeShardedSafetensors(tmp, checkpoint().tensors, { maxShardBytes: 800 });
    const shard3 = path.join(tmp, SHARD(3));
    fs.truncateSync(shard3, fs.statSync(shard3).size - 1);
    expectError(() => openWeights(tmp), /model-00003-of-00003\.safetensors: 'f\.ids': file is truncated/);
  });
});

describe('weights: single files and directory detection', () => {
  it('opens the reference checkpoint directory via model.safetensors', () => {
    const w = openWeights(FIXTURE_DIR);
    const f = SafetensorsFile.open(path.join(FIXTURE_DIR, 'model.safetensors'));
    try {
      assert.deepEqual(w.names(), f.names());
      assert.equal(w.names().length, 21);
      const info = w.info('lm_head.weight');
      assert.deepEqual(info.shape, [97, 64]);
      assert.equal(info.file, path.join(FIXTURE_DIR, 'model.safetensors'));
      for (const name of w.names()) assert.deepEqual(w.readFloat32(name), f.readFloat32(name));
    } finally {
      w.close();
      f.close();
    }
  });

  it('openWeightsFile reads one file (the PEFT adapter)', () => {
    const file = path.join(FIXTURE_DIR, 'adapter', 'adapter_model.safetensors');
    const w = openWeightsFile(file);
    try {
      assert.equal(w.names().length, 8);
      const name = 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight';
      assert.deepEqual(w.info(name).shape, [4, 64]);
      assert.equal(w.info(name).file, file);
      assert.equal(w.readFloat32(name).length, 256);
    } finally {
      w.close();
    }
  });

  it('prefers the shard index over model.safetensors', () => {
    writeShardedSafetensors(tmp, { x: { shape: [1], data: new Float32Array([1]) } }, { maxShardBytes: 100 });
    fs.copyFileSync(path.join(FIXTURE_DIR, 'model.safetensors'), path.join(tmp, 'model.safetensors'));
    const w = openWeights(tmp);
    assert.deepEqual(w.names(), ['x']);
    w.close();
  });

  it('a directory with only pytorch_model.bin asks for a safetensors conversion', () => {
    fs.writeFileSync(path.join(tmp, 'pytorch_model.bin'), 'pickle');
    fs.writeFileSync(path.join(tmp, 'config.json'), '{}');
    expectError(() => openWeights(tmp), new RegExp(`${path.basename(tmp)}: only PyTorch pickle weights found \\(pytorch_model\\.bin\\).*save_pretrained\\(out_dir, safe_serialization=True\\)`));
  });

  it('an empty or missing directory is a clear error', () => {
    expectError(() => openWeights(tmp), new RegExp(`${path.basename(tmp)}: no weights found: expected model\\.safetensors or model\\.safetensors\\.index\\.json`));
    fs.writeFileSync(path.join(tmp, 'other.safetensors'), '');
    expectError(() => openWeights(tmp), /no weights found.*found other\.safetensors \(open a single file with openWeightsFile\)/);
    expectError(() => openWeights(path.join(tmp, 'missing')), /missing: cannot read checkpoint directory/);
  });
});
