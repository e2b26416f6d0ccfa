/**
 * Learning-rate schedules as pure functions of the optimizer step.
 *
 * `step` is the 0-based index of the optimizer step about to be taken (0 .. totalSteps-1):
 * the value returned is the learning rate that step uses. This matches PyTorch/HF, where
 * `scheduler.step()` is called after each `optimizer.step()`, so step k runs with
 * `lr_lambda(k)`:
 *
 * - `constant`: lr.
 * - `linear` (HF `get_linear_schedule_with_warmup`): k / W during warmup (so step 0 has
 *   lr 0 when W > 0), then linear decay to 0 at step totalSteps: (total - k) / (total - W).
 * - `cosine` (HF `get_cosine_schedule_with_warmup`, numCycles 0.5): linear warmup, then
 *   0.5 * (1 + cos(pi * progress)); `minLrRatio` (default 0) lifts the floor like HF's
 *   `cosine_with_min_lr`.
 * - `onecycle` (PyTorch `OneCycleLR`, cosine annealing, two phases): starts at
 *   lr / divFactor (25), rises to lr at step pctStart * total - 1 (pctStart 0.3), then
 *   anneals to lr / (divFactor * finalDivFactor) (finalDivFactor 1e4) at the last step.
 *
 * Warmup is `warmupSteps`, or `ceil(warmupRatio * totalSteps)` when only a ratio is given
 * (HF TrainingArguments semantics).
 */
import { TdaError } from '../errors';

export type ScheduleName = 'constant' | 'linear' | 'cosine' | 'onecycle';

export type ScheduleSpec =
  | { kind: 'constant' }
  | { kind: 'linear'; warmupSteps?: number; warmupRatio?: number }
  | { kind: 'cosine'; warmupSteps?: number; warmupRatio?: number; minLrRatio?: number }
  | { kind: 'onecycle'; pctStart?: number; divFactor?: number; finalDivFactor?: number };

/** A schedule name (defaults for every parameter), a spec, or any function of (step, totalSteps, peak lr). */
export type ScheduleInput = ScheduleName | ScheduleSpec | ((step: number, totalSteps: number, lr: number) => number);

/** Number of warmup steps of a spec (0 for schedules without warmup). */
export function warmupSteps(spec: ScheduleSpec, totalSteps: number): number {
  if (spec.kind !== 'linear' && spec.kind !== 'cosine') return 0;
  if (spec.warmupSteps !== undefined && spec.warmupSteps > 0) return spec.warmupSteps;
  return Math.ceil(totalSteps * (spec.warmupRatio ?? 0));
}

function normalise(s: ScheduleName | ScheduleSpec): ScheduleSpec {
  if (typeof s === 'string') {
    if (s !== 'constant' && s !== 'linear' && s !== 'cosine' && s !== 'onecycle') {
      throw new TdaError(`unknown learning-rate schedule '${s}' (use constant, linear, cosine or onecycle)`, { field: 'schedule' });
    }
    return { kind: s };
  }
  return s;
}

function checkSpec(spec: ScheduleSpec): void {
  const bad = (field: string, msg: string) => new TdaError(msg, { field: `schedule.${field}` });
  const nonNegInt = (field: string, v: number | undefined) => {
    if (v !== undefined && !(Number.isInteger(v) && v >= 0)) throw bad(field, `must be a non-negative integer, got ${v}`);
  };
  const ratio = (field: string, v: number | undefined, lo: number, hi: number, openLo = false) => {
    if (v !== undefined && !(Number.isFinite(v) && (openLo ? v > lo : v >= lo) && v <= hi)) throw bad(field, `must be in ${openLo ? '(' : '['}${lo}, ${hi}], got ${v}`);
  };
  switch (spec.kind) {
    case 'constant':
      return;
    case 'linear':
      nonNegInt('warmupSteps', spec.warmupSteps);
      ratio('warmupRatio', spec.warmupRatio, 0, 1);
      return;
    case 'cosine':
      nonNegInt('warmupSteps', spec.warmupSteps);
      ratio('warmupRatio', spec.warmupRatio, 0, 1);
      ratio('minLrRatio', spec.minLrRatio, 0, 1);
      return;
    case 'onecycle':
      ratio('pctStart', spec.pctStart, 0, 1, true);
      if (spec.divFactor !== undefined && !(spec.divFactor > 0)) throw bad('divFactor', `must be positive, got ${spec.divFactor}`);
      if (spec.finalDivFactor !== undefined && !(spec.finalDivFactor > 0)) throw bad('finalDivFactor', `must be positive, got ${spec.finalDivFactor}`);
      return;
    default:
      throw new TdaError(`unknown learning-rate schedule kind ${JSON.stringify((spec as { kind: unknown }).kind)}`, { field: 'schedule.kind' });
  }
}

/** PyTorch's _annealing_cos: from `start` (pct 0) to `end` (pct 1) along half a cosine. */
function annealCos(start: number, end: number, pct: number): number {
  return end + ((start - end) / 2) * (Math.cos(Math.PI * pct) + 1);
}

/** The learning rate of optimizer step `step` (0-based) out of `totalSteps`, peak rate `lr`. */
export function learningRateAt(schedule: ScheduleName | ScheduleSpec, step: number, totalSteps: number, lr: number): number {
  const spec = normalise(schedule);
  checkSpec(spec);
  if (!Number.isInteger(totalSteps) || totalSteps < 1) throw new TdaError(`must be a positive integer, got ${totalSteps}`, { field: 'totalSteps' });
  if (!Number.isInteger(step) || step < 0 || step >= totalSteps) {
    throw new TdaError(`must be an integer in [0, ${totalSteps}), got ${step}`, { field: 'step' });
  }
  if (!Number.isFinite(lr) || lr < 0) throw new TdaError(`must be a finite non-negative number, got ${lr}`, { field: 'lr' });
  switch (spec.kind) {
    case 'constant':
      return lr;
    case 'linear': {
      const w = warmupSteps(spec, totalSteps);
      if (step < w) return (lr * step) / Math.max(1, w);
      return lr * Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - w));
    }
    case 'cosine': {
      const w = warmupSteps(spec, totalSteps);
      if (step < w) return (lr * step) / Math.max(1, w);
      const progress = (step - w) / Math.max(1, totalSteps - w);
      const cos = Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
      const floor = spec.minLrRatio ?? 0;
      return lr * (floor + (1 - floor) * cos);
    }
    case 'onecycle': {
      const initial = lr / (spec.divFactor ?? 25);
      const min = initial / (spec.finalDivFactor ?? 1e4);
      // PyTorch: phase ends at float(pct_start * total_steps) - 1 and total_steps - 1.
      const end1 = (spec.pctStart ?? 0.3) * totalSteps - 1;
      const end2 = totalSteps - 1;
      if (step <= end1) return annealCos(initial, lr, end1 > 0 ? step / end1 : 1);
      const span = end2 - end1;
      return annealCos(lr, min, span > 0 ? (step - end1) / span : 1);
    }
  }
}

/** A schedule bound to its length and peak rate: step -> learning rate. */
export function makeSchedule(schedule: ScheduleInput, totalSteps: number, lr: number): (step: number) => number {
  if (typeof schedule === 'function') {
    return (step) => {
      const v = schedule(step, totalSteps, lr);
      if (!Number.isFinite(v) || v < 0) throw new TdaError(`custom schedule returned ${v} at step ${step}`, { field: 'schedule' });
      return v;
    };
  }
  const spec = normalise(schedule);
  checkSpec(spec);
  learningRateAt(spec, 0, totalSteps, lr); // validates totalSteps and lr up front
  return (step) => learningRateAt(spec, step, totalSteps, lr);
}
