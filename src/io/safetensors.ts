/**
 * Safetensors reading. Layout: u64 little-endian header length N, N bytes of UTF-8 JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}}`, then the data
 * section (offsets are relative to its start). Only the header is read at open; each tensor is
 * read on demand from its offset, so multi-GB checkpoints stay on disk.
 */
import * as fs from 'node:fs';
import { TdaError } from '../errors';
import { decodeFloat32, decodeInt32 } from './decode';
import { readFully } from './fsutil';
import { HOST_IS_LITTLE_ENDIAN } from './dtype';
import { nativeAddon } from '../runtime/nativeAddon';
import { MAX_HEADER_BYTES, TensorInfo, parseHeader } from './header';

export { DType, DTYPE_BYTES } from './dtype';
export { TensorInfo } from './header';
export { bf16ToF32, f16ToF32, f32ToBf16Bits, f32ToF16Bits } from './half';
export { TensorData, TensorToWrite, encodeSafetensors, writeSafetensors } from './writer';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export class SafetensorsFile {
  private fd: number | null;
  private readonly byName: Map<string, TensorInfo>;

  private constructor(
    readonly path: string,
    fd: number,
    /** File size in bytes at open. */
    readonly size: number,
    tensors: TensorInfo[],
    readonly metadata: Record<string, string>,
  ) {
    this.fd = fd;
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  /** Read and validate the header; the file stays open for tensor reads until close(). */
  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (e) {
      throw new TdaError(`cannot open safetensors file: ${(e as Error).message}`, { file: path });
    }
    try {
      const stat = fs.fstatSync(fd);
      if (!stat.isFile()) throw new TdaError('is not a regular file', { file: path });
      const size = stat.size;
      if (size < 8) {
        throw new TdaError(`file is too short to be safetensors (${size} bytes; the length prefix alone is 8)`, { file: path });
      }
      const prefix = new Uint8Array(8);
      readFully(fd, prefix, 0, path);
      const n = new DataView(prefix.buffer).getBigUint64(0, true);
      if (n > BigInt(MAX_HEADER_BYTES)) {
        throw new TdaError(`header length ${n} is absurd (over ${MAX_HEADER_BYTES} bytes); not a safetensors file?`, { file: path });
      }
      const headerLength = Number(n);
      if (8 + headerLength > size) {
        throw new TdaError(
          `header length ${headerLength} runs past the end of the file (${size} bytes): truncated or not a safetensors file`,
          { file: path },
        );
      }
      const headerBytes = new Uint8Array(headerLength);
      readFully(fd, headerBytes, 8, path);
      let json: string;
      try {
        json = utf8.decode(headerBytes);
      } catch {
        throw new TdaError('header is not valid UTF-8', { file: path, field: 'header' });
      }
      const { tensors, metadata } = parseHeader(json, headerLength, size, path);
      return new SafetensorsFile(path, fd, size, tensors, metadata);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /** Tensor names in sorted order (no `__metadata__`). */
  names(): string[] {
    return [...this.byName.keys()].sort();
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new TdaError(`no such tensor in this file (it has ${this.byName.size})`, { file: this.path, field: name });
    return { ...t, shape: [...t.shape] };
  }

  /** A copy of the tensor's raw little-endian bytes. */
  readRaw(name: string): Uint8Array {
    const t = this.info(name);
    if (this.fd === null) throw new TdaError('file is closed', { file: this.path, field: name });
    // A fresh Uint8Array owns its own ArrayBuffer (not Node's shared Buffer pool), starting at
    // offset 0, so the decoders can view it as Float32Array etc. without alignment problems.
    const bytes = new Uint8Array(t.byteLength);
    readFully(this.fd, bytes, t.byteOffset, this.path, name);
    return bytes;
  }

  /** Values as float32, converting from any supported dtype (F64 and I64 lose precision). */
  readFloat32(name: string): Float32Array {
    const t = this.info(name);
    const addon = (t.dtype === 'BF16' || t.dtype === 'F16') && HOST_IS_LITTLE_ENDIAN ? nativeAddon() : null;
    if (addon?.widenHalfInPlace && this.fd !== null) {
      // Read straight into the upper half of the float32 array and widen there: one buffer.
      const count = t.byteLength / 2;
      const out = new Float32Array(count);
      readFully(this.fd, new Uint8Array(out.buffer, 2 * count, t.byteLength), t.byteOffset, this.path, name);
      addon.widenHalfInPlace(out, t.dtype === 'BF16' ? 1 : 2);
      return out;
    }
    return decodeFloat32(this.readRaw(name), t.dtype);
  }

  /**
   * Starts reading tensors as float32 and returns the function that waits for them and gives
   * their values, in the order of `names`. Where the native addon is built, F32, BF16 and F16
   * tensors are read on one thread of their own straight into their float32 arrays (two-byte
   * values into the upper half, widened in place once there), so the caller can work
   * meanwhile; other dtypes, or all of them without the addon, are read now. Call the
   * function before close().
   */
  readFloat32Ahead(names: string[]): () => Float32Array[] {
    const infos = names.map((n) => this.info(n));
    const addon = HOST_IS_LITTLE_ENDIAN && this.fd !== null ? nativeAddon() : null;
    const direct = (t: TensorInfo) => addon !== null && (t.dtype === 'F32' || t.dtype === 'BF16' || t.dtype === 'F16');
    const out = infos.map((t) => (direct(t) ? new Float32Array(t.byteLength / (t.dtype === 'F32' ? 4 : 2)) : this.readFloat32(t.name)));
    const async = infos.map((t, i) => ({ t, i })).filter(({ t }) => direct(t));
    if (!addon || async.length === 0) return () => out;
    const targets = async.map(({ t, i }) => (t.dtype === 'F32' ? new Uint8Array(out[i].buffer) : new Uint8Array(out[i].buffer, t.byteLength, t.byteLength)));
    const id = addon.readStart(this.fd!, Float64Array.from(async, ({ t }) => t.byteOffset), targets);
    let done = false;
    return () => {
      if (done) return out;
      done = true;
      const got = addon.readFinish(id);
      const want = async.reduce((a, { t }) => a + t.byteLength, 0);
      if (got !== want) {
        throw new TdaError(`unexpected end of file: read ${got} of ${want} bytes; did the file change after it was opened?`, { file: this.path });
      }
      for (const { t, i } of async) if (t.dtype !== 'F32') addon.widenHalfInPlace(out[i], t.dtype === 'BF16' ? 1 : 2);
      return out;
    };
  }

  /** Values as int32 from an integer or BOOL tensor; I64 values outside int32 are an error. */
  readInt32(name: string): Int32Array {
    return decodeInt32(this.readRaw(name), this.info(name).dtype, { file: this.path, field: name });
  }

  /** Release the file descriptor; safe to call twice. */
  close(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }
}
