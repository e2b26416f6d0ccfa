import { TdaError } from '../errors';
import { DTYPE_BYTES, DType, HOST_IS_LITTLE_ENDIAN, swapBytesInPlace } from './dtype';
import { bf16ArrayToF32, f16ArrayToF32 } from './half';

interface Where {
  file: string;
  field: string;
}

// `bytes` must own its buffer from offset 0 (freshly allocated by the reader), so typed-array
// views over it are aligned and may be handed out without a copy.
function hostOrder(bytes: Uint8Array, dtype: DType): ArrayBuffer {
  if (bytes.byteOffset !== 0 || bytes.byteLength !== bytes.buffer.byteLength) {
    throw new Error('internal: decode needs a buffer-owning Uint8Array');
  }
  if (!HOST_IS_LITTLE_ENDIAN) swapBytesInPlace(bytes, DTYPE_BYTES[dtype]);
  return bytes.buffer as ArrayBuffer;
}

/** Little-endian tensor bytes of any supported dtype -> float32 values (may reuse `bytes`). */
export function decodeFloat32(bytes: Uint8Array, dtype: DType): Float32Array {
  const buf = hostOrder(bytes, dtype);
  switch (dtype) {
    case 'F32':
      return new Float32Array(buf);
    case 'F16':
      return f16ArrayToF32(new Uint16Array(buf));
    case 'BF16':
      return bf16ArrayToF32(new Uint16Array(buf));
    case 'F64':
      return Float32Array.from(new Float64Array(buf));
    case 'I64': {
      const src = new BigInt64Array(buf);
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = Number(src[i]);
      return out;
    }
    case 'I32':
      return Float32Array.from(new Int32Array(buf));
    case 'I16':
      return Float32Array.from(new Int16Array(buf));
    case 'I8':
      return Float32Array.from(new Int8Array(buf));
    case 'U8':
      return Float32Array.from(bytes);
    case 'BOOL':
      return Float32Array.from(bytes, (b) => (b ? 1 : 0));
  }
}

/** Little-endian tensor bytes of an integer or BOOL dtype -> int32 values; I64 is range-checked. */
export function decodeInt32(bytes: Uint8Array, dtype: DType, where: Where): Int32Array {
  const buf = hostOrder(bytes, dtype);
  switch (dtype) {
    case 'I32':
      return new Int32Array(buf);
    case 'I64': {
      const src = new BigInt64Array(buf);
      const out = new Int32Array(src.length);
      for (let i = 0; i < src.length; i++) {
        const v = src[i];
        if (v < -2147483648n || v > 2147483647n) {
          throw new TdaError(`I64 value ${v} at flat index ${i} does not fit in int32`, where);
        }
        out[i] = Number(v);
      }
      return out;
    }
    case 'I16':
      return Int32Array.from(new Int16Array(buf));
    case 'I8':
      return Int32Array.from(new Int8Array(buf));
    case 'U8':
      return Int32Array.from(bytes);
    case 'BOOL':
      return Int32Array.from(bytes, (b) => (b ? 1 : 0));
    default:
      throw new TdaError(`dtype ${dtype} is floating point; read it with readFloat32, not readInt32`, where);
  }
}
