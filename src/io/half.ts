/**
 * IEEE half (F16) and bfloat16 (BF16) conversions. Float -> half rounds to nearest, ties to
 * even, like PyTorch's `.half()` / `.bfloat16()`, so files we write match files Python writes.
 */

// Scratch views to reinterpret float32 <-> uint32 bits without allocating per call.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Bits of `x` rounded to float32 (as when stored in a Float32Array). */
export function f32Bits(x: number): number {
  f32[0] = x;
  return u32[0];
}

/** Half-precision bit pattern (0..0xffff) to its exact value. */
export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero / subnormal (sign * 0 keeps -0)
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1024 + frac) * 2 ** (exp - 25);
}

/** float32 bit pattern -> half bit pattern, round-to-nearest-even. */
export function f32BitsToF16Bits(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  const mant = f & 0x7fffff;
  if (exp === 0xff) return mant ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00; // NaN stays quiet NaN
  const e = exp - 127 + 15; // re-biased exponent
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    // Subnormal half (or zero): shift the 24-bit significand down, rounding the dropped bits.
    if (e < -10) return sign; // below half the smallest subnormal (2^-25): rounds to zero
    const m = mant | 0x800000;
    const shift = 14 - e;
    const r = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    return sign | (rem > half || (rem === half && r & 1) ? r + 1 : r); // r + 1 may become 0x400 = smallest normal
  }
  const r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  return sign | (rem > 0x1000 || (rem === 0x1000 && r & 1) ? r + 1 : r); // carry may reach 0x7c00 = inf
}

/** Number -> half bit pattern. `x` is first rounded to float32 (the writer's input type). */
export function f32ToF16Bits(x: number): number {
  return f32BitsToF16Bits(f32Bits(x));
}

/** bfloat16 bit pattern -> value (exact: bf16 is the top half of a float32). */
export function bf16ToF32(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0];
}

/** float32 bit pattern -> bfloat16 bit pattern, round-to-nearest-even. */
export function f32BitsToBf16Bits(f: number): number {
  if ((f & 0x7f800000) === 0x7f800000 && f & 0x7fffff) return ((f >>> 16) | 0x40) & 0xffff; // NaN: keep quiet
  const lsb = (f >>> 16) & 1;
  return ((f + 0x7fff + lsb) >>> 16) & 0xffff; // carry into the exponent gives inf on overflow, as wanted
}

/** Number -> bfloat16 bit pattern (`x` first rounded to float32). */
export function f32ToBf16Bits(x: number): number {
  return f32BitsToBf16Bits(f32Bits(x));
}

// 64K-entry table: decoding a large F16 tensor is a lookup per element, not a branchy function call.
let f16Table: Float32Array | null = null;

/** Decode half bit patterns to float32. */
export function f16ArrayToF32(src: Uint16Array): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16ToF32(i);
  }
  const t = f16Table;
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]];
  return out;
}

/** Decode bfloat16 bit patterns to float32 by shifting them into the high half of each word. */
export function bf16ArrayToF32(src: Uint16Array): Float32Array {
  const bits = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return new Float32Array(bits.buffer);
}

/** Encode float32 values as half bit patterns. */
export function f32ArrayToF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16Bits(bits[i]);
  return out;
}

/** Encode float32 values as bfloat16 bit patterns. */
export function f32ArrayToBf16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToBf16Bits(bits[i]);
  return out;
}
