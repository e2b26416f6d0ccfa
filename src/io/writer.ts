import { TdaError } from '../errors';
import { DTYPE_BYTES, DType, HOST_IS_LITTLE_ENDIAN, isDType, isShape, shapeSize, swapBytesInPlace } from './dtype';
import { writeFileAtomic, writeFully } from './fsutil';
import { f32ArrayToBf16, f32ArrayToF16 } from './half';

export type TensorData = Float32Array | Int32Array | BigInt64Array | Float64Array | Uint8Array | Uint16Array;

export interface TensorToWrite {
  /** Defaults from the array type: F32, F64, I32, I64, U8; Uint16Array (raw half bits) must say F16 or BF16. */
  dtype?: DType;
  shape: number[];
  /**
   * The values, or a function that makes them when the tensor is written (then `dtype` is
   * required): a checkpoint larger than memory is written with one tensor alive at a time.
   */
  data: TensorData | (() => TensorData);
}

// Which dtypes each array type may be stored as; the first one is the default.
function allowedDTypes(data: TensorData): DType[] {
  if (data instanceof Float32Array) return ['F32', 'F16', 'BF16', 'F64'];
  if (data instanceof Float64Array) return ['F64', 'F32'];
  if (data instanceof Int32Array) return ['I32', 'I64'];
  if (data instanceof BigInt64Array) return ['I64'];
  if (data instanceof Uint16Array) return ['F16', 'BF16'];
  if (data instanceof Uint8Array) return ['U8', 'BOOL'];
  return [];
}

/** A validated tensor with its place in the data section; `encode` produces its bytes on demand. */
export interface PlannedTensor {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
  encode(): Uint8Array;
}

function bytesOf(a: TensorData): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

// Little-endian bytes of `data` as `dtype`. Same-type cases return a view (no copy) on LE hosts.
function encodeData(data: TensorData, dtype: DType): Uint8Array {
  let out: TensorData;
  if (data instanceof Float32Array) {
    out = dtype === 'F16' ? f32ArrayToF16(data) : dtype === 'BF16' ? f32ArrayToBf16(data) : dtype === 'F64' ? Float64Array.from(data) : data;
  } else if (data instanceof Float64Array) {
    out = dtype === 'F32' ? Float32Array.from(data) : data;
  } else if (data instanceof Int32Array) {
    out = dtype === 'I64' ? BigInt64Array.from(data, (x) => BigInt(x)) : data;
  } else {
    out = data;
  }
  const bytes = bytesOf(out);
  if (HOST_IS_LITTLE_ENDIAN || DTYPE_BYTES[dtype] === 1) return bytes;
  const copy = bytes.slice();
  swapBytesInPlace(copy, DTYPE_BYTES[dtype]);
  return copy;
}

/** Validate every tensor and lay them out in sorted-name order (as the Python library does). */
export function planTensors(tensors: Record<string, TensorToWrite>, file: string): PlannedTensor[] {
  let pos = 0;
  return Object.keys(tensors)
    .sort()
    .map((name) => {
      const where = { file, field: name };
      if (name === '' || name === '__metadata__') throw new TdaError('is not a valid tensor name', where);
      const t = tensors[name];
      const lazy = typeof t?.data === 'function';
      if (lazy && (t.dtype === undefined || !isDType(t.dtype))) throw new TdaError('a tensor whose data is made on write needs an explicit dtype', where);
      if (!isShape(t?.shape)) {
        throw new TdaError(`shape must be an array of non-negative integers, got ${JSON.stringify(t?.shape)}`, where);
      }
      const dtype = lazy ? t.dtype! : checkData(t.data as TensorData, t.dtype, t.shape, where);
      const begin = pos;
      pos += shapeSize(t.shape) * DTYPE_BYTES[dtype];
      const make = lazy ? (t.data as () => TensorData) : () => t.data as TensorData;
      return {
        name,
        dtype,
        shape: [...t.shape],
        begin,
        end: pos,
        encode: () => {
          const data = make();
          if (lazy) checkData(data, dtype, t.shape, where);
          return encodeData(data, dtype);
        },
      };
    });
}

/** Checks that `data` can be stored as `dtype` (default: from its type) with `shape`; returns the dtype. */
function checkData(data: TensorData, requested: DType | undefined, shape: number[], where: { file: string; field: string }): DType {
  const allowed = data ? allowedDTypes(data) : [];
  if (allowed.length === 0) {
    throw new TdaError('data must be a Float32Array, Float64Array, Int32Array, BigInt64Array, Uint8Array or Uint16Array', where);
  }
  if (requested !== undefined && !isDType(requested)) throw new TdaError(`unknown dtype ${JSON.stringify(requested)}`, where);
  if (requested === undefined && data instanceof Uint16Array) {
    throw new TdaError('Uint16Array data holds raw half bits; give dtype F16 or BF16', where);
  }
  const dtype = requested ?? allowed[0];
  if (!allowed.includes(dtype)) {
    throw new TdaError(`cannot write ${data.constructor.name} data as ${dtype} (allowed: ${allowed.join(', ')})`, where);
  }
  const n = shapeSize(shape);
  if (data.length !== n) {
    throw new TdaError(`data has ${data.length} elements but shape ${JSON.stringify(shape)} needs ${n}`, where);
  }
  if (dtype === 'BOOL' && (data as Uint8Array).some((b) => b > 1)) {
    throw new TdaError('BOOL data must contain only 0 and 1', where);
  }
  return dtype;
}

/** 8-byte length prefix + JSON header, space-padded so the data section starts 8-byte aligned. */
export function encodeHeader(planned: PlannedTensor[], metadata: Record<string, string> | undefined, file: string): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new TdaError('metadata values must be strings', { file, field: `__metadata__.${k}` });
    }
    header.__metadata__ = metadata;
  }
  for (const t of planned) header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [t.begin, t.end] };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const out = Buffer.alloc(8 + padded, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  return out;
}

/** The whole file in memory; handy for small tensors and tests. Large checkpoints: use writeSafetensors. */
export function encodeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Buffer {
  const planned = planTensors(tensors, '<buffer>');
  return Buffer.concat([encodeHeader(planned, metadata, '<buffer>'), ...planned.map((t) => t.encode())]);
}

/**
 * Write a safetensors file atomically. Header and tensors are written one after another, so at
 * most one converted tensor is held in memory at a time (none for same-dtype writes).
 */
export function writeSafetensors(path: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): void {
  const planned = planTensors(tensors, path);
  const header = encodeHeader(planned, metadata, path);
  writeFileAtomic(path, (fd) => {
    writeFully(fd, header);
    for (const t of planned) writeFully(fd, t.encode());
  });
}

/** Size in bytes a tensor will occupy in the data section (validates it). */
export function tensorByteLength(name: string, t: TensorToWrite, file: string): number {
  const [p] = planTensors({ [name]: t }, file);
  return p.end - p.begin;
}
