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
  const E = tf.randomNormal([4000, 256]);
  const ids = tf.tensor1d(Array.from({ length: 512 }, (_, i) => (i * 7) % 4000), 'int32');
  time('gather [4000,256] 512 rows', () => tf.gather(E, ids).dispose());
  const h = tf.randomNormal([512, 256]);
  const rows = tf.tensor1d(Array.from({ length: 384 }, (_, i) => i), 'int32');
  time('gather [512,256] 384 rows', () => tf.gather(h, rows).dispose());
  const x = tf.randomNormal([384, 4000]);
  time('softmax [384,4000]', () => tf.softmax(x).dispose());
  time('logSoftmax [384,4000]', () => tf.logSoftmax(x).dispose());
  time('log [384,4000]', () => tf.log(tf.abs(x)).dispose());
  const s = tf.randomNormal([8, 4, 64, 64]);
  time('softmax [8,4,64,64]', () => tf.softmax(s).dispose());
  const r = tf.randomNormal([2048, 2, 32]);
  time('reverse [2048,2,32] axis1', () => tf.reverse(r, 1).dispose());
  const a = tf.randomNormal([512, 256]);
  time('clone [512,256]', () => tf.clone(a).dispose(), 100);
  time('dataSync [512,256] (after add)', () => { const t = tf.add(a, 0); t.dataSync(); t.dispose(); }, 100);
  const d = a.dataSync() as Float32Array;
  time('32 x tensor2d from subarray [64,64]', () => { for (let p = 0; p < 32; p++) tf.tensor2d(d.subarray(p * 4096, (p + 1) * 4096), [64, 64]).dispose(); }, 100);
  time('transpose 5d [8,64,2,2,64]->[0,2,3,1,4]', () => tf.tidy(() => { tf.transpose(tf.reshape(a, [8, 64, 2, 2, 64]), [0, 2, 3, 1, 4]); }), 50);
  time('transpose [512,256]', () => tf.transpose(a).dispose(), 100);
  const big = tf.randomNormal([2048, 512]);
  time('transpose [2048,512]', () => tf.transpose(big).dispose(), 20);
  time('div [384,4000]', () => tf.div(x, x).dispose());
  time('sum [8,4,64,64] axis -1', () => tf.sum(s, -1, true).dispose());
}
main();
