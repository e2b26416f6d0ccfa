/**
 * A backward pass that frees memory as it goes, installed on the tfjs engine in place of
 * its own `gradients` (every tf.grads, tf.variableGrads and optimizer step goes through it).
 *
 * tfjs 4.22 (pinned) keeps every gradient it computes, and every tensor the forward pass
 * saved for the backward, until the whole backward pass ends. Its peak is therefore the
 * forward's saved activations plus one gradient per activation: for per-example gradients
 * about three to four times the forward alone. Here each node's output gradients are freed
 * as soon as the node has been differentiated (a tensor's gradient is only read by the node
 * that produced it), and the node's saved tensors likewise (each node saves clones of its
 * own), so activations are released layer by layer as the backward pass walks down.
 *
 * The arithmetic is tfjs's own, node by node in the same order (same kernels, same
 * accumulation order), so the numbers are bit for bit those of tfjs's pass. Nested calls
 * while recording a tape for higher-order gradients (gradientDepth > 0) are left to tfjs.
 */
import * as tf from '@tensorflow/tfjs';

type Tensor = tf.Tensor;

/** The engine internals used (tfjs-core 4.22.0, pinned). */
interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, Tensor>;
  outputs: Tensor[];
  saved?: Tensor[];
  gradient?: (dys: (Tensor | null)[]) => Record<string, () => Tensor>;
}

interface Engine {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  startTape(): void;
  endTape(): void;
  tidy<T extends tf.TensorContainer>(name: string | (() => T), f?: () => T): T;
  gradients: GradientsFn;
}

type GradientsFn = (f: () => Tensor, xs: Tensor[], dy?: Tensor, allowNoGradients?: boolean) => { value: Tensor; grads: Tensor[] };

/**
 * The tape nodes on a path from some x to y, in tape order, each with its inputs pruned to
 * those that depend on an x (tfjs's own filtering rule).
 */
export function nodesFromXsToY(tape: TapeNode[], xs: Tensor[], y: Tensor): TapeNode[] {
  const fromX = new Set<number>(xs.map((x) => x.id));
  const nodeFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      for (const o of node.outputs) fromX.add(o.id);
      nodeFromX.add(node.id);
    }
  }
  const toY = new Set<number>([y.id]);
  const nodeToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    if (node.outputs.some((o) => toY.has(o.id))) {
      for (const t of Object.values(node.inputs)) toY.add(t.id);
      nodeToY.add(node.id);
    }
  }
  const kept: TapeNode[] = [];
  for (const node of tape) {
    if (!nodeFromX.has(node.id) || !nodeToY.has(node.id)) continue;
    const inputs: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(node.inputs)) if (fromX.has(t.id)) inputs[name] = t;
    kept.push({ ...node, inputs });
  }
  return kept;
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Walks `nodes` backward from y's gradient, accumulating each input's gradient; frees each
 * node's output gradients (unless one is an x's, or the caller's dy) and its saved tensors
 * once the node is done.
 */
function backprop(engine: Engine, nodes: TapeNode[], y: Tensor, dyY: Tensor, xs: Tensor[], callerDy: Tensor | undefined, freeSaved: boolean): Tensor[] {
  const grad = new Map<number, Tensor>([[y.id, dyY]]);
  // How many entries of `grad` hold each tensor object: a gradient function may hand its dy
  // back unchanged as an input's gradient, so a tensor is freed only when none holds it.
  const holders = new Map<Tensor, number>();
  const hold = (t: Tensor) => holders.set(t, (holders.get(t) ?? 0) + 1);
  const unhold = (t: Tensor) => {
    const n = (holders.get(t) ?? 1) - 1;
    if (n > 0) holders.set(t, n);
    else holders.delete(t);
  };
  hold(dyY);
  const wanted = new Set(xs.map((x) => x.id));
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    const dys = node.outputs.map((o) => grad.get(o.id) ?? null);
    if (node.gradient == null) throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
    const inputGradients = node.gradient(dys);
    // Freed after the node's last input gradient is computed: a later one may still read them.
    const spent: Tensor[] = [];
    for (const [name, x] of Object.entries(node.inputs)) {
      if (!(name in inputGradients)) {
        throw new Error(`Cannot backprop through input ${name}. Available gradients found: ${Object.keys(inputGradients)}.`);
      }
      const dx = engine.tidy(() => inputGradients[name]());
      if (dx.dtype !== 'float32') {
        throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input ${name} must have 'float32' dtype, but has '${dx.dtype}'`);
      }
      if (!sameShape(dx.shape, x.shape)) {
        throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input '${name}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`);
      }
      const current = grad.get(x.id);
      if (current === undefined) {
        grad.set(x.id, dx);
        hold(dx);
      } else {
        const sum = tf.add(current, dx);
        grad.set(x.id, sum);
        hold(sum);
        unhold(current);
        spent.push(current, dx);
      }
    }
    for (const o of node.outputs) {
      const g = grad.get(o.id);
      if (g === undefined || wanted.has(o.id)) continue;
      grad.delete(o.id);
      unhold(g);
      spent.push(g);
    }
    for (const t of spent) if (!holders.has(t) && t !== callerDy) t.dispose();
    if (freeSaved) for (const t of node.saved ?? []) t.dispose();
  }
  return xs.map((x) => grad.get(x.id)!);
}

let original: GradientsFn | null = null;

/** Puts the frugal backward pass on this thread's engine (idempotent). */
export function installFrugalBackprop(): void {
  const engine = tf.engine() as unknown as Engine;
  if (original) return;
  original = engine.gradients;
  const tfjsGradients = original;
  engine.gradients = function (this: Engine, f, xs, dy, allowNoGradients = false) {
    // Higher-order gradients (recording a tape while differentiating): tfjs's own pass.
    if (this.state.gradientDepth > 0) return tfjsGradients.call(this, f, xs, dy, allowNoGradients);
    if (xs.length === 0) throw new Error('gradients() received an empty list of xs.');
    if (dy != null && dy.dtype !== 'float32') throw new Error(`dy must have 'float32' dtype, but has '${dy.dtype}'`);
    const y = this.scopedRun(
      () => this.startTape(),
      () => this.endTape(),
      () => this.tidy('forward', f),
    );
    if (!(y instanceof tf.Tensor)) throw new Error('The result y returned by f() must be a tensor.');
    const tape = this.state.activeTape ?? [];
    const nodes = nodesFromXsToY(tape, xs, y);
    if (!allowNoGradients && nodes.length === 0) {
      throw new Error('Cannot compute gradient of y=f(x) with respect to x. Make sure that the f you passed encloses all operations that lead from x to y.');
    }
    return this.tidy('backward', () => {
      const top = this.state.gradientDepth === 0;
      const grads = backprop(this, nodes, y, dy ?? tf.ones(y.shape), xs, dy ?? undefined, top);
      if (top) {
        // Nodes off the x-to-y paths still hold their saved tensors.
        for (const node of tape) for (const t of node.saved ?? []) t.dispose();
        this.state.activeTape = null;
      }
      return { value: y, grads } as unknown as tf.TensorContainer;
    }) as unknown as { value: Tensor; grads: Tensor[] };
  };
}

/** Puts tfjs's own backward pass back (for comparisons). */
export function removeFrugalBackprop(): void {
  if (!original) return;
  (tf.engine() as unknown as Engine).gradients = original;
  original = null;
}
