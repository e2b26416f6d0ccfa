import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  SafetensorsFile,
  bf16ToF32,
  encodeSafetensors,
  f16ToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  writeSafetensors,
} from '../../src/io/safetensors';
import { TdaError } from '../../src/errors';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'llama-tiny', 'model.safetensors');

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Hand-build a file: 8-byte LE length, header (JSON text padded to 8), then `data`. */
function craft(name: string, header: unknown, data: Uint8Array = new Uint8Array(0)): string {
  let json = typeof header === 'string' ? header : JSON.stringify(header);
  while (Buffer.byteLength(json) % 8) json += ' ';
  const h = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(h.length));
  const file = path.join(tmp, name);
  fs.writeFileSync(file, Buffer.concat([prefix, h, data]));
  return file;
}

/** Independent reference: parse a whole F32 safetensors file with DataView. */
function handParseF32(file: string): Map<string, { shape: number[]; values: number[] }> {
  const buf = fs.readFileSync(file);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const out = new Map<string, { shape: number[]; values: number[] }>();
  for (const [name, e] of Object.entries<any>(header)) {
    if (name === '__metadata__') continue;
    assert.equal(e.dtype, 'F32');
    const values: number[] = [];
    for (let p = 8 + n + e.data_offsets[0]; p < 8 + n + e.data_offsets[1]; p += 4) values.push(dv.getFloat32(p, true));
    out.set(name, { shape: e.shape, values });
  }
  return out;
}

function expectError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TdaError, `expected TdaError, got ${e}`);
    assert.match(e.message, re);
    return true;
  });
}

describe('safetensors: reference file written by the Python library', () => {
  it('lists names, shapes, dtypes, offsets and metadata', () => {
    const f = SafetensorsFile.open(FIXTURE);
    try {
      const names = f.names();
      assert.equal(names.length, 21);
      assert.deepEqual(names, [...names].sort());
      assert.ok(!names.includes('__metadata__'));
      assert.deepEqual(f.metadata, { format: 'pt' });
      const lm = f.info('lm_head.weight');
      assert.deepEqual(lm.shape, [97, 64]);
      assert.equal(lm.dtype, 'F32');
      assert.equal(lm.byteOffset, 8 + 2128); // header length 2128, first tensor at data offset 0
      assert.equal(lm.byteLength, 97 * 64 * 4);
      assert.deepEqual(f.info('model.layers.0.mlp.down_proj.weight').shape, [64, 172]);
      assert.deepEqual(f.info('model.layers.1.self_attn.k_proj.weight').shape, [32, 64]);
      assert.deepEqual(f.info('model.norm.weight').shape, [64]);
      assert.ok(f.has('model.embed_tokens.weight'));
      assert.ok(!f.has('__metadata__'));
    } finally {
      f.close();
    }
  });

  it('reads every tensor equal to an independent DataView parse', () => {
    const ref = handParseF32(FIXTURE);
    const f = SafetensorsFile.open(FIXTURE);
    try {
      assert.deepEqual(f.names(), [...ref.keys()].sort());
      for (const [name, { shape, values }] of ref) {
        assert.deepEqual(f.info(name).shape, shape);
        const got = f.readFloat32(name);
        assert.equal(got.length, values.length, name);
        assert.deepEqual(Array.from(got), values, name);
      }
      const lm = f.readFloat32('lm_head.weight');
      assert.equal(lm.length, 97 * 64);
      assert.ok(lm.some((v) => v !== 0));
    } finally {
      f.close();
    }
  });

  it('opens the other fixtures (adapter, expected gradients)', () => {
    for (const rel of ['adapter/adapter_model.safetensors', 'expected_grads.safetensors']) {
      const file = path.join(path.dirname(FIXTURE), rel);
      const ref = handParseF32(file);
      const f = SafetensorsFile.open(file);
      try {
        assert.equal(f.names().length, ref.size);
        for (const [name, { values }] of ref) assert.deepEqual(Array.from(f.readFloat32(name)), values);
      } finally {
        f.close();
      }
    }
  });
});

describe('safetensors: F16 / BF16 conversions against known bit patterns', () => {
  const bitsF16: Array<[number, number]> = [
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff], // largest finite half
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -14 - 2 ** -24, 0x03ff], // largest subnormal
    [2 ** -24, 0x0001], // smallest subnormal
    [0, 0x0000],
    [-0, 0x8000],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
  ];

  it('encodes and decodes exact values', () => {
    for (const [x, bits] of bitsF16) {
      assert.equal(f32ToF16Bits(x), bits, `f32ToF16Bits(${x})`);
      assert.ok(Object.is(f16ToF32(bits), x), `f16ToF32(0x${bits.toString(16)})`);
    }
    assert.equal(f16ToF32(0x3555), 0.333251953125);
  });

  it('rounds to nearest, ties to even', () => {
    assert.equal(f32ToF16Bits(0.1), 0x2e66);
    assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie between 0x3c00 and 0x3c01 -> even
    assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie between 0x3c01 and 0x3c02 -> even
    assert.equal(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20), 0x3c01); // just above the tie
    assert.equal(f32ToF16Bits(65519), 0x7bff); // below the 65504/65536 midpoint
    assert.equal(f32ToF16Bits(65520), 0x7c00); // the midpoint ties to even = inf
    assert.equal(f32ToF16Bits(1e6), 0x7c00);
    assert.equal(f32ToF16Bits(-1e6), 0xfc00);
    // Subnormal rounding.
    assert.equal(f32ToF16Bits(2 ** -25), 0x0000); // tie between 0 and 1 -> 0
    assert.equal(f32ToF16Bits(1.5 * 2 ** -25), 0x0001);
    assert.equal(f32ToF16Bits(3 * 2 ** -25), 0x0002); // tie between 1 and 2 -> 2
    assert.equal(f32ToF16Bits(-(2 ** -26)), 0x8000);
    assert.equal(f32ToF16Bits(2 ** -14 - 2 ** -25), 0x0400); // tie rounds up into the smallest normal
    assert.equal(f32ToF16Bits(1e-30), 0x0000);
  });

  it('handles NaN', () => {
    const b = f32ToF16Bits(NaN);
    assert.equal(b & 0x7c00, 0x7c00);
    assert.notEqual(b & 0x03ff, 0);
    assert.ok(Number.isNaN(f16ToF32(0x7e00)));
    assert.ok(Number.isNaN(f16ToF32(0xfc01)));
  });

  it('round-trips every non-NaN half bit pattern', () => {
    for (let b = 0; b < 0x10000; b++) {
      if ((b & 0x7c00) === 0x7c00 && b & 0x3ff) continue;
      assert.equal(f32ToF16Bits(f16ToF32(b)), b);
    }
  });

  it('bfloat16 bit patterns, rounding and specials', () => {
    assert.equal(f32ToBf16Bits(1), 0x3f80);
    assert.equal(f32ToBf16Bits(-2), 0xc000);
    assert.equal(f32ToBf16Bits(-0), 0x8000);
    assert.equal(f32ToBf16Bits(Infinity), 0x7f80);
    assert.equal(f32ToBf16Bits(-Infinity), 0xff80);
    assert.equal(bf16ToF32(0x3f80), 1);
    assert.ok(Object.is(bf16ToF32(0x8000), -0));
    assert.equal(bf16ToF32(0x7f7f), 3.3895313892515355e38); // largest finite bf16
    assert.equal(bf16ToF32(0x0001), 2 ** -133); // smallest subnormal
    assert.equal(f32ToBf16Bits(2 ** -133), 0x0001);
    assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80); // tie -> even
    assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82); // tie -> even
    assert.equal(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20), 0x3f81);
    assert.equal(f32ToBf16Bits(3.4028234663852886e38), 0x7f80); // float32 max rounds to inf
    const nan = f32ToBf16Bits(NaN);
    assert.equal(nan & 0x7f80, 0x7f80);
    assert.notEqual(nan & 0x7f, 0);
    assert.ok(Number.isNaN(bf16ToF32(0x7fc0)));
    for (let b = 0; b < 0x10000; b++) {
      if ((b & 0x7f80) === 0x7f80 && b & 0x7f) continue;
      assert.equal(f32ToBf16Bits(bf16ToF32(b)), b);
    }
  });
});

describe('safetensors: write and read back', () => {
  const floats = new Float32Array([0, -0, 1, -2.5, 3.14159, 1e-8, 65504, 1e30, -1e-40, Infinity, -Infinity, 123.456]);

  it('round-trips F32, F16, BF16, F64, I32, I64 with metadata', () => {
    const file = path.join(tmp, 'rt.safetensors');
    const f64 = new Float64Array([Math.PI, -1e300, 5e-324, 2 ** 53]);
    const i32 = new Int32Array([0, 1, -1, 2147483647, -2147483648, 42]);
    const i64 = new BigInt64Array([0n, -5n, 2147483647n, -2147483648n]);
    writeSafetensors(
      file,
      {
        f32: { shape: [3, 4], data: floats },
        f16: { dtype: 'F16', shape: [12], data: floats },
        bf16: { dtype: 'BF16', shape: [2, 6], data: floats },
        f64: { dtype: 'F64', shape: [4], data: f64 },
        f64as32: { dtype: 'F32', shape: [4], data: f64 },
        i32: { shape: [2, 3], data: i32 },
        i32as64: { dtype: 'I64', shape: [6], data: i32 },
        i64: { shape: [4], data: i64 },
        scalar: { shape: [], data: new Float32Array([7]) },
        empty: { shape: [0, 3], data: new Float32Array(0) },
      },
      { format: 'pt', note: 'hello' },
    );
    const f = SafetensorsFile.open(file);
    try {
      assert.deepEqual(f.metadata, { format: 'pt', note: 'hello' });
      assert.deepEqual(f.names(), ['bf16', 'empty', 'f16', 'f32', 'f64', 'f64as32', 'i32', 'i32as64', 'i64', 'scalar']);
      assert.deepEqual(f.info('f32').shape, [3, 4]);
      assert.deepEqual(f.readFloat32('f32'), floats);
      assert.deepEqual(f.readFloat32('f16'), Float32Array.from(floats, (x) => f16ToF32(f32ToF16Bits(x))));
      assert.deepEqual(f.readFloat32('bf16'), Float32Array.from(floats, (x) => bf16ToF32(f32ToBf16Bits(x))));
      assert.deepEqual(new Float64Array(f.readRaw('f64').buffer), f64);
      assert.deepEqual(f.readFloat32('f64'), Float32Array.from(f64));
      assert.equal(f.info('f64as32').dtype, 'F32');
      assert.deepEqual(f.readFloat32('f64as32'), Float32Array.from(f64));
      assert.deepEqual(f.readInt32('i32'), i32);
      assert.deepEqual(f.readFloat32('i32'), Float32Array.from(i32));
      assert.equal(f.info('i32as64').dtype, 'I64');
      assert.equal(f.info('i32as64').byteLength, 48);
      assert.deepEqual(f.readInt32('i32as64'), i32);
      assert.deepEqual(f.readInt32('i64'), new Int32Array([0, -5, 2147483647, -2147483648]));
      assert.deepEqual(f.readFloat32('scalar'), new Float32Array([7]));
      assert.deepEqual(f.info('scalar').shape, []);
      assert.equal(f.readFloat32('empty').length, 0);
    } finally {
      f.close();
    }
  });

  it('writes little-endian half bits and a padded, sorted, contiguous header', () => {
    const buf = encodeSafetensors({
      z: { dtype: 'BF16', shape: [3], data: new Float32Array([1, -2, Infinity]) },
      a: { dtype: 'F16', shape: [3], data: new Float32Array([1, -2, 65504]) },
    });
    const n = Number(buf.readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    const text = buf.subarray(8, 8 + n).toString('utf8');
    assert.match(text, / *$/);
    const header = JSON.parse(text);
    assert.deepEqual(Object.keys(header), ['a', 'z']);
    assert.deepEqual(header.a, { dtype: 'F16', shape: [3], data_offsets: [0, 6] });
    assert.deepEqual(header.z, { dtype: 'BF16', shape: [3], data_offsets: [6, 12] });
    assert.deepEqual([...buf.subarray(8 + n)], [0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x80, 0x3f, 0x00, 0xc0, 0x80, 0x7f]);
    // writeSafetensors produces the same bytes.
    const file = path.join(tmp, 'same.safetensors');
    writeSafetensors(file, {
      a: { dtype: 'F16', shape: [3], data: new Float32Array([1, -2, 65504]) },
      z: { dtype: 'BF16', shape: [3], data: new Float32Array([1, -2, Infinity]) },
    });
    assert.deepEqual(fs.readFileSync(file), buf);
  });

  it('accepts raw half bits, U8 and BOOL data, and views into larger buffers', () => {
    const file = path.join(tmp, 'raw.safetensors');
    const big = new Float32Array([9, 9, 1, 2, 3, 9]);
    writeSafetensors(file, {
      half: { dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) },
      u8: { shape: [3], data: new Uint8Array([0, 200, 255]) },
      mask: { dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) },
      view: { shape: [3], data: big.subarray(2, 5) },
    });
    const f = SafetensorsFile.open(file);
    try {
      assert.deepEqual(f.readFloat32('half'), new Float32Array([1, -2]));
      assert.deepEqual(f.readInt32('u8'), new Int32Array([0, 200, 255]));
      assert.deepEqual(f.readInt32('mask'), new Int32Array([1, 0, 1]));
      assert.deepEqual(f.readFloat32('view'), new Float32Array([1, 2, 3]));
    } finally {
      f.close();
    }
  });

  it('reads I16, I8, U8 and BOOL tensors', () => {
    const data = new Uint8Array([0xff, 0x7f, 0x00, 0x80, /* I8 */ 0xfe, 0x05, /* U8 */ 0xfe, 0x05, /* BOOL */ 1, 0]);
    const file = craft('ints.safetensors', {
      a16: { dtype: 'I16', shape: [2], data_offsets: [0, 4] },
      b8: { dtype: 'I8', shape: [2], data_offsets: [4, 6] },
      c8: { dtype: 'U8', shape: [2], data_offsets: [6, 8] },
      d: { dtype: 'BOOL', shape: [2], data_offsets: [8, 10] },
    }, data);
    const f = SafetensorsFile.open(file);
    try {
      assert.deepEqual(f.readInt32('a16'), new Int32Array([32767, -32768]));
      assert.deepEqual(f.readFloat32('a16'), new Float32Array([32767, -32768]));
      assert.deepEqual(f.readInt32('b8'), new Int32Array([-2, 5]));
      assert.deepEqual(f.readInt32('c8'), new Int32Array([254, 5]));
      assert.deepEqual(f.readFloat32('d'), new Float32Array([1, 0]));
      assert.deepEqual(f.readRaw('c8'), new Uint8Array([0xfe, 0x05]));
    } finally {
      f.close();
    }
  });

  it('rejects bad tensors to write, naming them, and leaves no temp file', () => {
    const file = path.join(tmp, 'bad.safetensors');
    expectError(() => writeSafetensors(file, { w: { shape: [2, 3], data: new Float32Array(5) } }), /bad\.safetensors: 'w': data has 5 elements but shape \[2,3\] needs 6/);
    expectError(() => writeSafetensors(file, { w: { dtype: 'F16', shape: [2], data: new Int32Array(2) } }), /'w': cannot write Int32Array data as F16/);
    expectError(() => writeSafetensors(file, { w: { shape: [2], data: new Uint16Array(2) } }), /'w': .*give dtype F16 or BF16/);
    expectError(() => writeSafetensors(file, { w: { shape: [-1], data: new Float32Array(1) } }), /'w': shape must be/);
    expectError(() => writeSafetensors(file, { m: { dtype: 'BOOL', shape: [1], data: new Uint8Array([2]) } }), /'m': BOOL data/);
    assert.deepEqual(fs.readdirSync(tmp), []);
  });

  it('replaces files atomically and cleans up the temp file when the rename fails', () => {
    const file = path.join(tmp, 'x.safetensors');
    writeSafetensors(file, { a: { shape: [1], data: new Float32Array([1]) } });
    writeSafetensors(file, { a: { shape: [1], data: new Float32Array([2]) } });
    const f = SafetensorsFile.open(file);
    assert.deepEqual(f.readFloat32('a'), new Float32Array([2]));
    f.close();
    // A non-empty directory in the way makes the final rename fail.
    const blocked = path.join(tmp, 'blocked.safetensors');
    fs.mkdirSync(blocked);
    fs.writeFileSync(path.join(blocked, 'keep'), '');
    expectError(() => writeSafetensors(blocked, { a: { shape: [1], data: new Float32Array([1]) } }), /blocked\.safetensors: cannot write file/);
    assert.deepEqual(fs.readdirSync(tmp).sort(), ['blocked.safetensors', 'x.safetensors']);
  });
});

describe('safetensors: corrupt and invalid files', () => {
  const good = { w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } };

  it('empty and 4-byte files', () => {
    const empty = path.join(tmp, 'empty.safetensors');
    fs.writeFileSync(empty, '');
    expectError(() => SafetensorsFile.open(empty), /empty\.safetensors: file is too short .*0 bytes/);
    const four = path.join(tmp, 'four.safetensors');
    fs.writeFileSync(four, Buffer.from([1, 2, 3, 4]));
    expectError(() => SafetensorsFile.open(four), /four\.safetensors: file is too short .*4 bytes/);
  });

  it('missing file', () => {
    expectError(() => SafetensorsFile.open(path.join(tmp, 'nope.safetensors')), /nope\.safetensors: cannot open/);
  });

  it('header length beyond the file, or absurd', () => {
    const file = path.join(tmp, 'long.safetensors');
    const b = Buffer.alloc(20);
    b.writeBigUInt64LE(1000n);
    fs.writeFileSync(file, b);
    expectError(() => SafetensorsFile.open(file), /long\.safetensors: header length 1000 runs past the end of the file \(20 bytes\)/);
    b.writeBigUInt64LE(2n ** 40n);
    fs.writeFileSync(file, b);
    expectError(() => SafetensorsFile.open(file), /long\.safetensors: header length 1099511627776 is absurd/);
  });

  it('header not JSON, not an object, not UTF-8', () => {
    expectError(() => SafetensorsFile.open(craft('nj.safetensors', '{"w": ')), /nj\.safetensors: 'header': header is not valid JSON/);
    expectError(() => SafetensorsFile.open(craft('arr.safetensors', '[1, 2]')), /arr\.safetensors: 'header': header must be a JSON object, got an array/);
    const file = path.join(tmp, 'utf.safetensors');
    const b = Buffer.alloc(16, 0x20);
    b.writeBigUInt64LE(8n);
    b[8] = 0xff;
    fs.writeFileSync(file, b);
    expectError(() => SafetensorsFile.open(file), /utf\.safetensors: 'header': header is not valid UTF-8/);
  });

  it('unknown dtype, bad shape, bad offsets, bad entry', () => {
    const data = new Uint8Array(16);
    expectError(
      () => SafetensorsFile.open(craft('dt.safetensors', { w: { dtype: 'F8_E4M3', shape: [16], data_offsets: [0, 16] } }, data)),
      /dt\.safetensors: 'w': unknown or unsupported dtype "F8_E4M3"/,
    );
    expectError(
      () => SafetensorsFile.open(craft('sh.safetensors', { w: { dtype: 'F32', shape: [2, -2], data_offsets: [0, 16] } }, data)),
      /sh\.safetensors: 'w': shape must be an array of non-negative integers/,
    );
    expectError(
      () => SafetensorsFile.open(craft('sh2.safetensors', { w: { dtype: 'F32', shape: '4', data_offsets: [0, 16] } }, data)),
      /sh2\.safetensors: 'w': shape must be/,
    );
    expectError(
      () => SafetensorsFile.open(craft('off.safetensors', { w: { dtype: 'F32', shape: [0], data_offsets: [16, 0] } }, data)),
      /off\.safetensors: 'w': data_offsets must be two non-negative integers/,
    );
    expectError(
      () => SafetensorsFile.open(craft('off2.safetensors', { w: { dtype: 'F32', shape: [4], data_offsets: [0, 16.5] } }, data)),
      /off2\.safetensors: 'w': data_offsets must be/,
    );
    expectError(() => SafetensorsFile.open(craft('ent.safetensors', { w: 3 }, data)), /ent\.safetensors: 'w': tensor entry must be an object/);
  });

  it('shape/bytes mismatch', () => {
    const file = craft('mm.safetensors', { w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, new Uint8Array(16));
    expectError(() => SafetensorsFile.open(file), /mm\.safetensors: 'w': data_offsets \[0, 12\] span 12 bytes but shape \[2,2\] of F32 needs 16 bytes/);
  });

  it('offsets outside the data section', () => {
    const file = craft('oor.safetensors', {
      a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] },
      b: { dtype: 'F32', shape: [1], data_offsets: [1000, 1004] },
    }, new Uint8Array(16));
    expectError(() => SafetensorsFile.open(file), /oor\.safetensors: 'b': data_offsets \[1000, 1004\] lie outside the data section \(16 bytes\)/);
  });

  it('overlapping tensors', () => {
    const file = craft('ov.safetensors', {
      b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
      a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] },
    }, new Uint8Array(16));
    expectError(() => SafetensorsFile.open(file), /ov\.safetensors: 'b': data_offsets \[8, 16\] overlap tensor 'a' \[0, 12\]/);
  });

  it('non-string metadata', () => {
    const file = craft('meta.safetensors', { __metadata__: { n: 3 }, ...good }, new Uint8Array(16));
    expectError(() => SafetensorsFile.open(file), /meta\.safetensors: '__metadata__\.n': metadata values must be strings/);
  });

  it('truncated file', () => {
    const file = path.join(tmp, 'cut.safetensors');
    writeSafetensors(file, {
      a: { shape: [8], data: new Float32Array(8) },
      b: { shape: [8], data: new Float32Array(8) },
    });
    const size = fs.statSync(file).size;
    fs.truncateSync(file, size - 5);
    expectError(() => SafetensorsFile.open(file), new RegExp(`cut\\.safetensors: 'b': file is truncated: expected ${size} bytes .*found ${size - 5}`));
  });

  it('missing tensor names, closed files, wrong read type', () => {
    const file = craft('ok.safetensors', good, new Uint8Array(16));
    const f = SafetensorsFile.open(file);
    expectError(() => f.info('nope'), /ok\.safetensors: 'nope': no such tensor/);
    expectError(() => f.readFloat32('nope'), /ok\.safetensors: 'nope': no such tensor/);
    expectError(() => f.readInt32('w'), /ok\.safetensors: 'w': dtype F32 is floating point/);
    f.close();
    f.close();
    expectError(() => f.readFloat32('w'), /ok\.safetensors: 'w': file is closed/);
  });

  it('I64 values outside int32', () => {
    const file = path.join(tmp, 'i64.safetensors');
    writeSafetensors(file, { big: { shape: [3], data: new BigInt64Array([1n, 2n ** 31n, 3n]) } });
    const f = SafetensorsFile.open(file);
    try {
      expectError(() => f.readInt32('big'), /i64\.safetensors: 'big': I64 value 2147483648 at flat index 1 does not fit in int32/);
      assert.deepEqual(f.readFloat32('big'), new Float32Array([1, 2 ** 31, 3]));
    } finally {
      f.close();
    }
  });
});

describe('safetensors: lazy reading', () => {
  it('reads a small tensor from a 50 MB file touching only a few bytes', () => {
    const big = 12_500_000; // F32 elements = 50 MB
    const small = new Float32Array([1.5, -2, 3.25, 4]);
    const header = {
      __metadata__: { format: 'pt' },
      big: { dtype: 'F32', shape: [big], data_offsets: [0, big * 4] },
      small: { dtype: 'F32', shape: [4], data_offsets: [big * 4, big * 4 + 16] },
    };
    const file = craft('lazy.safetensors', header);
    const dataStart = fs.statSync(file).size;
    // Sparse file: extend to full size without writing the big tensor, then write the small one.
    fs.truncateSync(file, dataStart + big * 4 + 16);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, new Uint8Array(small.buffer), 0, 16, dataStart + big * 4);
    fs.closeSync(fd);

    const realFs = require('node:fs') as typeof fs;
    const original = realFs.readSync;
    let bytesRead = 0;
    let calls = 0;
    (realFs as any).readSync = (...args: any[]) => {
      const n = (original as any)(...args);
      bytesRead += n;
      calls++;
      return n;
    };
    try {
      const f = SafetensorsFile.open(file);
      try {
        assert.deepEqual(f.readFloat32('small'), small);
        assert.equal(f.info('big').byteLength, 50_000_000);
      } finally {
        f.close();
      }
    } finally {
      realFs.readSync = original;
    }
    assert.ok(calls > 0, 'spy saw the reads');
    assert.ok(bytesRead < 4096, `read ${bytesRead} bytes`);
  });
});
