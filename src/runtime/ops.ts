/**
 * Differentiable building blocks tuned for the tfjs wasm backend.
 *
 * On wasm, matMul with transposeA/transposeB runs ~10x slower than transposing first, and
 * tfjs's own matMul gradient uses those flags. These ops supply gradients that transpose
 * explicitly. Frozen operands are captured in closures, because `customGrad`
 * differentiates every input it is given.
 */
import * as tf from '@tensorflow/tfjs';

/** A frozen weight `W` [out, in] (HF layout) kept together with its transpose. */
export interface FrozenMatrix {
  /** [in, out]: forward y = x @ wT. */
  wT: tf.Tensor2D;
  /** [out, in]: backward dx = dy @ w. */
  w: tf.Tensor2D;
}

/** tf.customGrad with the argument types spelled out (its declared type lumps tensors and `save`). */
type GradBody = (...args: never[]) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] };
function customGrad(body: GradBody): (...inputs: tf.Tensor[]) => tf.Tensor {
  return tf.customGrad(body as unknown as Parameters<typeof tf.customGrad>[0]) as (...inputs: tf.Tensor[]) => tf.Tensor;
}

export function frozenMatrix(w: tf.Tensor2D): FrozenMatrix {
  return { w, wT: tf.keep(tf.transpose(w)) as tf.Tensor2D };
}

/** y = x @ W^T for a frozen W; only x receives a gradient. */
export function frozenLinear(x: tf.Tensor2D, m: FrozenMatrix): tf.Tensor2D {
  const f = customGrad((xIn: tf.Tensor, save: tf.GradSaveFunc) => {
    void save;
    return {
      value: tf.matMul(xIn as tf.Tensor2D, m.wT),
      gradFunc: (dy: tf.Tensor) => tf.matMul(dy as tf.Tensor2D, m.w),
    };
  });
  return f(x) as tf.Tensor2D;
}

/** 2-D product a @ b with a gradient for both operands, using explicit transposes. */
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  const f = customGrad((aIn: tf.Tensor, bIn: tf.Tensor, save: tf.GradSaveFunc) => {
    save([aIn, bIn]);
    return {
      value: tf.matMul(aIn as tf.Tensor2D, bIn as tf.Tensor2D),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sa, sb] = saved as tf.Tensor2D[];
        return [tf.matMul(dy as tf.Tensor2D, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy as tf.Tensor2D)];
      },
    };
  });
  return f(a, b) as tf.Tensor2D;
}

/** Batched product a @ b for rank-3 tensors, gradients for both operands, explicit transposes. */
export function batchMatMul(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  const f = customGrad((aIn: tf.Tensor, bIn: tf.Tensor, save: tf.GradSaveFunc) => {
    save([aIn, bIn]);
    return {
      value: tf.matMul(aIn as tf.Tensor3D, bIn as tf.Tensor3D),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sa, sb] = saved as tf.Tensor3D[];
        return [
          tf.matMul(dy as tf.Tensor3D, tf.transpose(sb, [0, 2, 1])),
          tf.matMul(tf.transpose(sa, [0, 2, 1]), dy as tf.Tensor3D),
        ];
      },
    };
  });
  return f(a, b) as tf.Tensor3D;
}

/**
 * rows = table[ids] along axis 0: the embedding lookup, and the selection of the positions
 * whose loss counts. The forward is a gather; the gradient is oneHot(ids)^T @ dy, because
 * gather's gradient kernel (UnsortedSegmentSum) is missing on wasm.
 */
export function gatherRows(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  const n = table.shape[0];
  const f = customGrad((tIn: tf.Tensor, save: tf.GradSaveFunc) => {
    void save;
    return {
      value: tf.gather(tIn as tf.Tensor2D, ids),
      gradFunc: (dy: tf.Tensor) => tf.matMul(tf.transpose(oneHotFloat(ids, n)), dy as tf.Tensor2D),
    };
  });
  return f(table) as tf.Tensor2D;
}

/**
 * One-hot rows as float32. The wasm backend's OneHot kernel (tfjs 4.22) ignores a float
 * dtype and writes integer bits into a float32 buffer, so build int32 and cast.
 */
export function oneHotFloat(ids: tf.Tensor1D, depth: number): tf.Tensor2D {
  return tf.tidy(() => tf.cast(tf.oneHot(ids, depth), 'float32') as tf.Tensor2D);
}

/**
 * Runs `f` in a tidy scope and downloads its result as a Float32Array. Never return a
 * typed array from tf.tidy itself: tidy walks the returned value element by element
 * (seconds for millions of values).
 */
export function download(f: () => tf.Tensor): Float32Array {
  const t = tf.tidy(f);
  try {
    return t.dataSync() as Float32Array;
  } finally {
    t.dispose();
  }
}

/** SiLU activation x * sigmoid(x). */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}
