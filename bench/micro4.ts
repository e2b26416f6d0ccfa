import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/runtime/backend';
function time(name: string, f: () => void, reps = 20) {
  f();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) f();
  const ms = (performance.now() - t0) / reps;
  console.log(`${name.padEnd(50)} ${ms.toFixed(3)} ms`);
  return ms;
}
async function main() {
  await initBackend('wasm');
  const a = tf.randomNormal([512, 256]);
  const be = tf.backend() as unknown as { typedArrayFromHeap(t: tf.Tensor): Float32Array; wasm: { HEAPU8: Uint8Array } };
  const v = be.typedArrayFromHeap(a);
  console.log('buffer type', Object.prototype.toString.call(v.buffer), v.buffer.constructor.name, (v.buffer as ArrayBuffer).byteLength, (v.buffer as any).resizable, (v.buffer as any).growable);
  const dst = new Float32Array(v.length);
  time('dst.set(view)', () => { dst.set(v); }, 100);
  time('view.slice()', () => { v.slice(); }, 100);
  time('new Float32Array(view)', () => { new Float32Array(v); }, 100);
  const src = new Float32Array(v.length);
  time('view.set(js)', () => { v.set(src); }, 100);
  time('js->js set', () => { dst.set(src); }, 100);
  const u8 = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  const d8 = new Uint8Array(v.byteLength);
  time('u8 set', () => { d8.set(u8); }, 100);
  time('copyWithin-ish via Buffer', () => { Buffer.from(v.buffer, v.byteOffset, v.byteLength).copy(Buffer.from(d8.buffer)); }, 100);
}
main();
