/**
 * An independent reference for the EK-FAC tests: a LLaMA forward written here from plain
 * tfjs ops, one example at a time (no padding, no batching, no custom gradients, nothing of
 * src/model/llama.ts), with the base weights regenerated from their seed. Every LoRA tensor's
 * output gets an explicit offset; one tf.grads of the example's loss with respect to the
 * offsets gives its per-token pre-activation gradients, and the forward records its inputs.
 * Then covariances, per-example gradients and corrected eigenvalues in float64 loops.
 */
import * as tf from '@tensorflow/tfjs';
import { LabelMask, TokenSequence } from '../../src/data/batch';
import { adapterKey, LoraAdapter } from '../../src/model/adapter';
import { modulePath } from '../../src/model/modules';
import { randomBaseTensors } from '../../src/model/synthetic';
import { LinearModule, ModelConfig } from '../../src/model/types';

/** Per LoRA tensor (adapter key): its inputs a_t [T, cols] and output gradients d_t [T, rows], as plain arrays. */
export interface ReferenceRows {
  act: number[][];
  grad: number[][];
}

export interface ReferenceExample {
  loss: number;
  tensors: Map<string, ReferenceRows>;
}

/** The reference forward and its per-token rows for one example. */
export function referenceExample(cfg: ModelConfig, weightSeed: number, adapter: LoraAdapter, seq: TokenSequence, mask: LabelMask): ReferenceExample {
  const base = randomBaseTensors(cfg, weightSeed);
  const W = (name: string) => {
    const t = base.get(name)!;
    return tf.tensor2d(t.data, t.shape as [number, number]);
  };
  const vec = (name: string) => tf.tensor1d(base.get(name)!.data);
  const T = seq.inputIds.length;
  const { numHeads: H, numKvHeads: Hkv, headDim: d, rmsNormEps: eps } = cfg;
  const lora = new Map(adapter.modules.map((m) => [m.path, m]));
  const r = adapter.config.r;
  const first = mask === 'response' ? Math.max(seq.promptLength, 1) : 1;
  const offsets: tf.Tensor2D[] = [];
  const keys: string[] = [];
  for (const m of adapter.modules) {
    offsets.push(tf.zeros([T, r]), tf.zeros([T, m.outFeatures]));
    keys.push(adapterKey(m.path, 'A'), adapterKey(m.path, 'B'));
  }
  const inputs = new Map<string, tf.Tensor2D>();
  let lossValue = 0;
  const grads = tf.grads((...offs: tf.Tensor[]) => {
    const offsetOf = new Map(keys.map((k, i) => [k, offs[i] as tf.Tensor2D]));
    const rms = (x: tf.Tensor2D, w: tf.Tensor1D) => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), 1, true), eps))), w) as tf.Tensor2D;
    const linear = (x: tf.Tensor2D, layer: number, module: LinearModule) => {
      const path = modulePath(layer, module);
      let y = tf.matMul(x, W(`${path}.weight`), false, true) as tf.Tensor2D;
      const m = lora.get(path);
      if (!m) return y;
      const A = tf.tensor2d(m.A, [r, m.inFeatures]);
      const B = tf.tensor2d(m.B, [m.outFeatures, r]);
      const low = tf.add(tf.matMul(x, A, false, true), offsetOf.get(adapterKey(path, 'A'))!) as tf.Tensor2D;
      inputs.set(adapterKey(path, 'A'), tf.keep(x));
      inputs.set(adapterKey(path, 'B'), tf.keep(low));
      const out = tf.add(tf.matMul(low, B, false, true), offsetOf.get(adapterKey(path, 'B'))!);
      y = tf.add(y, tf.mul(out, adapter.config.scaling)) as tf.Tensor2D;
      return y;
    };
    // Rotary tables: inv_freq_i = 1 / theta^(2i/d); angle (t, i) = t inv_freq_i, both halves.
    const cos = new Float32Array(T * d);
    const sin = new Float32Array(T * d);
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < d / 2; i++) {
        const angle = t * Math.fround(1 / Math.pow(cfg.ropeTheta, (2 * i) / d));
        cos[t * d + i] = cos[t * d + i + d / 2] = Math.cos(angle);
        sin[t * d + i] = sin[t * d + i + d / 2] = Math.sin(angle);
      }
    }
    const cosT = tf.tensor2d(cos, [T, d]);
    const sinT = tf.tensor2d(sin, [T, d]);
    const rope = (x: tf.Tensor2D) => {
      const x1 = tf.slice(x, [0, 0], [T, d / 2]);
      const x2 = tf.slice(x, [0, d / 2], [T, d / 2]);
      return tf.add(tf.mul(x, cosT), tf.mul(tf.concat([tf.neg(x2), x1], 1), sinT)) as tf.Tensor2D;
    };
    const causal = new Float32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) causal[i * T + j] = j <= i ? 0 : -1e9;
    const causalT = tf.tensor2d(causal, [T, T]);
    const embed = base.get('model.embed_tokens.weight')!;
    const rows = new Float32Array(T * cfg.hiddenSize);
    seq.inputIds.forEach((id, t) => rows.set(embed.data.subarray(id * cfg.hiddenSize, (id + 1) * cfg.hiddenSize), t * cfg.hiddenSize));
    let h = tf.tensor2d(rows, [T, cfg.hiddenSize]);
    for (let l = 0; l < cfg.numLayers; l++) {
      const x = rms(h, vec(`model.layers.${l}.input_layernorm.weight`));
      const q = linear(x, l, 'q_proj');
      const k = linear(x, l, 'k_proj');
      const v = linear(x, l, 'v_proj');
      const heads: tf.Tensor2D[] = [];
      for (let hd = 0; hd < H; hd++) {
        const g = Math.floor(hd / (H / Hkv));
        const qh = rope(tf.slice(q, [0, hd * d], [T, d]));
        const kh = rope(tf.slice(k, [0, g * d], [T, d]));
        const vh = tf.slice(v, [0, g * d], [T, d]);
        const scores = tf.add(tf.div(tf.matMul(qh, kh, false, true), Math.sqrt(d)), causalT);
        heads.push(tf.matMul(tf.softmax(scores), vh));
      }
      h = tf.add(h, linear(tf.concat(heads, 1), l, 'o_proj'));
      const y = rms(h, vec(`model.layers.${l}.post_attention_layernorm.weight`));
      const gate = linear(y, l, 'gate_proj');
      const act = tf.mul(tf.mul(gate, tf.sigmoid(gate)), linear(y, l, 'up_proj')) as tf.Tensor2D;
      h = tf.add(h, linear(act, l, 'down_proj'));
    }
    const final = rms(h, vec('model.norm.weight'));
    const logits = tf.matMul(final, W('lm_head.weight'), false, true);
    const logp = tf.logSoftmax(logits);
    // Row t - 1 predicts token t; the loss is the mean over the counted targets.
    const pick = new Float32Array(T * cfg.vocabSize);
    for (let t = first; t < T; t++) pick[(t - 1) * cfg.vocabSize + seq.inputIds[t]] = 1 / (T - first);
    const loss = tf.neg(tf.sum(tf.mul(logp, tf.tensor2d(pick, [T, cfg.vocabSize])))) as tf.Scalar;
    lossValue = loss.dataSync()[0];
    return loss;
  })(offsets);
  const tensors = new Map<string, ReferenceRows>();
  keys.forEach((k, i) => {
    tensors.set(k, { act: inputs.get(k)!.arraySync() as number[][], grad: grads[i].arraySync() as number[][] });
  });
  grads.forEach((g) => g.dispose());
  offsets.forEach((o) => o.dispose());
  for (const t of inputs.values()) t.dispose();
  return { loss: lossValue, tensors };
}

/** sum over every token of every example of u u^T / tokens, in float64. */
export function covariance(examples: ReferenceExample[], key: string, side: 'act' | 'grad'): number[][] {
  const rowsOf = examples.flatMap((e) => e.tensors.get(key)![side]);
  const n = rowsOf[0].length;
  const c = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (const u of rowsOf) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) c[i][j] += u[i] * u[j];
  return c.map((row) => row.map((v) => v / rowsOf.length));
}

/** The example's gradient sum_t d_t a_t^T [rows, cols], float64. */
export function exampleGradient(e: ReferenceExample, key: string): number[][] {
  const { act, grad } = e.tensors.get(key)!;
  const rows = grad[0].length;
  const cols = act[0].length;
  const g = Array.from({ length: rows }, () => new Array<number>(cols).fill(0));
  for (let t = 0; t < act.length; t++) for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) g[i][j] += grad[t][i] * act[t][j];
  return g;
}

/** Q_d^T G Q_a for row-major eigenvector matrices (columns are eigenvectors), float64. */
export function rotateInto(g: number[][], qd: ArrayLike<number>, qa: ArrayLike<number>): number[][] {
  const rows = g.length;
  const cols = g[0].length;
  const gqa = g.map((row) => Array.from({ length: cols }, (_, b) => row.reduce((s, v, j) => s + v * qa[j * cols + b], 0)));
  return Array.from({ length: rows }, (_, a) => Array.from({ length: cols }, (_, b) => gqa.reduce((s, row, i) => s + qd[i * rows + a] * row[b], 0)));
}
