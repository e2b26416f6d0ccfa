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
  time('dataSync existing [512,256]', () => { a.dataSync(); }, 100);
  const be = tf.backend() as unknown as { typedArrayFromHeap(t: tf.Tensor): Float32Array };
  time('typedArrayFromHeap [512,256] + slice', () => { be.typedArrayFromHeap(a).slice(); }, 100);
  const big = tf.randomNormal([2048, 512]);
  time('dataSync [2048,512]', () => { big.dataSync(); }, 20);
  time('transpose [512,256]', () => tf.transpose(a).dispose(), 100);
  time('transpose via 3d [512,256]', () => tf.tidy(() => { tf.reshape(tf.transpose(tf.reshape(a, [256, 2, 256]), [2, 0, 1]), [256, 512]); }), 100);
  time('transpose via 4d [512,256]', () => tf.tidy(() => { tf.reshape(tf.transpose(tf.reshape(a, [1, 512, 1, 256]), [0, 3, 2, 1]), [256, 512]); }), 100);
  time('transpose [2048,512]', () => tf.transpose(big).dispose(), 20);
  time('transpose via 3d [2048,512]', () => tf.tidy(() => { tf.reshape(tf.transpose(tf.reshape(big, [1024, 2, 512]), [2, 0, 1]), [512, 2048]); }), 20);
  const b4 = tf.randomNormal([8, 64, 4, 64]);
  time('transpose 4d [8,64,4,64] 0213', () => tf.transpose(b4, [0, 2, 1, 3]).dispose(), 100);
  time('transpose 4d [8,64,4,64] 0231', () => tf.transpose(b4, [0, 2, 3, 1]).dispose(), 100);
  const c3 = tf.randomNormal([32, 64, 64]);
  time('transpose 3d [32,64,64] 021', () => tf.transpose(c3, [0, 2, 1]).dispose(), 100);
  const x = tf.randomNormal([384, 4000]);
  time('exp', () => tf.exp(x).dispose());
  time('log', () => tf.log(x).dispose());
  time('abs', () => tf.abs(x).dispose());
  time('sqrt', () => tf.sqrt(x).dispose());
  time('rsqrt', () => tf.rsqrt(x).dispose());
  time('square', () => tf.square(x).dispose());
  time('neg', () => tf.neg(x).dispose());
  time('sub', () => tf.sub(x, x).dispose());
  time('mean axis1 keep', () => tf.mean(x, 1, true).dispose());
  time('mul bcast [384,4000]x[4000]', () => tf.tidy(() => { tf.mul(x, tf.ones([4000])); }));
  time('mul bcast [384,4000]x[384,1]', () => tf.tidy(() => { tf.mul(x, tf.ones([384, 1])); }));
}
main();
