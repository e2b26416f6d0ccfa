/** Safetensors pieces for the fuzz tests: split a file into header and data, rebuild it, check a parsed file. */
import * as assert from 'node:assert/strict';
import { TdaError } from '../../src/errors';
import { DTYPE_BYTES, DType } from '../../src/io/dtype';
import { SafetensorsFile } from '../../src/io/safetensors';
import { assertCleanError } from './mutate';

export interface SplitFile {
  header: Record<string, unknown>;
  data: Uint8Array;
}

export function splitSafetensors(bytes: Uint8Array): SplitFile {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { header: JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8')), data: bytes.slice(8 + n) };
}

/** A file from header text and data, with a correct length prefix so that the header is what gets tested. */
export function joinSafetensors(headerText: string, data: Uint8Array): Buffer {
  const header = Buffer.from(headerText, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([prefix, header, data]);
}

/** Values that make tensor entries wrong in the ways real corrupt files are. */
export const SAFETENSORS_VALUES: unknown[] = [
  'F32', 'F16', 'BF16', 'F64', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'F8_E4M3', 'f32', 'U64',
  [1e12], [2 ** 31, 2 ** 31], [10 ** 12, 0], [0, 10 ** 12], [2 ** 26, 2 ** 26, 2 ** 26], [], [0], [1], [3, -1], [1.5], ['2'],
  [0, 0], [0, 4], [4, 0], [0, 2 ** 53], [2 ** 40, 2 ** 40 + 4], [8, 4], [0, 8, 16], [-4, 0],
];

/**
 * The invariants of an opened file: every tensor's byte length matches its shape and dtype,
 * lies inside the file, overlaps no other tensor, and reads back as that many values.
 */
export function checkOpenedFile(st: SafetensorsFile, fileSize: number, headerEnd: number): void {
  const spans: [number, number, string][] = [];
  for (const name of st.names()) {
    const t = st.info(name);
    const count = t.shape.reduce((a, d) => a * d, 1);
    assert.ok(t.shape.every((d) => Number.isSafeInteger(d) && d >= 0), `${name}: bad shape ${t.shape}`);
    assert.equal(t.byteLength, count * DTYPE_BYTES[t.dtype], `${name}: byte length does not match shape`);
    assert.ok(t.byteOffset >= headerEnd && t.byteOffset + t.byteLength <= fileSize, `${name}: outside the data section`);
    if (t.byteLength > 0) spans.push([t.byteOffset, t.byteOffset + t.byteLength, name]);
    assert.equal(st.readRaw(name).length, t.byteLength);
    assert.equal(st.readFloat32(name).length, count);
    if (isIntegral(t.dtype)) {
      try {
        assert.equal(st.readInt32(name).length, count);
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        assertCleanError(e, st.path);
      }
    } else {
      assert.throws(() => st.readInt32(name), TdaError);
    }
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) assert.ok(spans[i][0] >= spans[i - 1][1], `${spans[i][2]} overlaps ${spans[i - 1][2]}`);
  for (const v of Object.values(st.metadata)) assert.equal(typeof v, 'string');
}

function isIntegral(dtype: DType): boolean {
  return !['F64', 'F32', 'F16', 'BF16'].includes(dtype);
}

/**
 * Lay the tensors of a (mutated) header out again, back to back, and size the data to fit:
 * a changed shape or dtype then reaches the reader's checks of meaning instead of being
 * refused for its offsets. Returns null when the header is not an object of entries.
 */
export function relayout(headerText: string, data: Uint8Array): { headerText: string; data: Uint8Array } | null {
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch {
    return null;
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return null;
  let pos = 0;
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__' || typeof entry !== 'object' || entry === null) continue;
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const size = DTYPE_BYTES[e.dtype as DType];
    if (size === undefined || !Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) continue;
    const bytes = (e.shape as number[]).reduce((a, d) => a * d, 1) * size;
    if (bytes > 1 << 20) continue; // leave huge shapes as they are: those must be refused, not laid out
    e.data_offsets = [pos, pos + bytes];
    pos += bytes;
  }
  const resized = new Uint8Array(pos);
  resized.set(data.subarray(0, pos));
  try {
    return { headerText: JSON.stringify(header), data: resized };
  } catch {
    return null; // nested too deep to print again: use the mutated text as it is
  }
}
