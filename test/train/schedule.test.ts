import * as assert from 'node:assert/strict';
import { learningRateAt, makeSchedule, warmupSteps } from '../../src/train/schedule';
import { throwsTda } from '../helpers/errors';

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

describe('learning-rate schedules', () => {
  it('constant', () => {
    for (const s of [0, 3, 9]) assert.equal(learningRateAt('constant', s, 10, 0.01), 0.01);
  });

  it('linear warmup then linear decay to 0 (HF get_linear_schedule_with_warmup)', () => {
    const lr = (s: number) => learningRateAt({ kind: 'linear', warmupSteps: 2 }, s, 10, 1);
    // warmup: k/2; then (10 - k)/8
    const expected = [0, 0.5, 1, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125];
    expected.forEach((v, s) => close(lr(s), v));
    // No warmup: step 0 at the peak.
    close(learningRateAt('linear', 0, 4, 2), 2);
    close(learningRateAt('linear', 3, 4, 2), 0.5);
  });

  it('warmupRatio is rounded up to whole steps like HF', () => {
    assert.equal(warmupSteps({ kind: 'linear', warmupRatio: 0.15 }, 10), 2);
    assert.equal(warmupSteps({ kind: 'cosine', warmupRatio: 0.1, warmupSteps: 3 }, 10), 3);
    close(learningRateAt({ kind: 'linear', warmupRatio: 0.15 }, 1, 10, 1), 0.5);
  });

  it('cosine with warmup (HF get_cosine_schedule_with_warmup) and a floor', () => {
    const lr = (s: number) => learningRateAt({ kind: 'cosine', warmupSteps: 2 }, s, 10, 1);
    close(lr(0), 0);
    close(lr(1), 0.5);
    close(lr(2), 1);
    close(lr(4), 0.8535533905932737); // 0.5 (1 + cos(pi/4))
    close(lr(6), 0.5);
    close(lr(9), 0.03806023374435663); // 0.5 (1 + cos(7 pi / 8))
    close(learningRateAt({ kind: 'cosine', warmupSteps: 2, minLrRatio: 0.1 }, 6, 10, 1), 0.55);
  });

  it('one-cycle (PyTorch OneCycleLR, cos annealing): lr/25 -> lr at 30% -> lr/25e4', () => {
    const lr = (s: number) => learningRateAt('onecycle', s, 10, 1);
    // Phase 1 ends at 0.3 * 10 - 1 = 2, phase 2 at 9.
    close(lr(0), 0.04);
    close(lr(1), 0.52); // halfway along the cosine from 0.04 to 1
    close(lr(2), 1);
    close(lr(5), 0.6112620219362893); // 4e-6 + (1 - 4e-6)/2 (1 + cos(3 pi / 7))
    close(lr(9), 4e-6);
    const custom = (s: number) => learningRateAt({ kind: 'onecycle', pctStart: 0.25, divFactor: 10, finalDivFactor: 100 }, s, 9, 0.5);
    close(custom(0), 0.05);
    // Phase 1 ends at 0.25 * 9 - 1 = 1.25 (between steps): step 1 is 80% up, step 2 is 1/9 down.
    close(custom(1), 0.5 - 0.225 * (1 + Math.cos(0.8 * Math.PI)), 1e-12);
    close(custom(2), 0.0005 + 0.24975 * (1 + Math.cos(Math.PI / 9)), 1e-12);
    close(custom(8), 0.0005);
  });

  it('makeSchedule binds the length and rate; custom functions are checked', () => {
    const f = makeSchedule({ kind: 'linear', warmupSteps: 2 }, 10, 1);
    close(f(5), 0.625);
    const g = makeSchedule((s, total, lr) => lr * (1 - s / total), 4, 2);
    close(g(2), 1);
    throwsTda(() => makeSchedule(() => NaN, 4, 1)(0), 'schedule', 'NaN');
  });

  it('rejects bad input with TdaError', () => {
    throwsTda(() => learningRateAt('constant', 10, 10, 1), 'step', '[0, 10)');
    throwsTda(() => learningRateAt('constant', -1, 10, 1), 'step');
    throwsTda(() => learningRateAt('constant', 0, 0, 1), 'totalSteps');
    throwsTda(() => learningRateAt('constant', 0, 5, -1), 'lr');
    throwsTda(() => learningRateAt('exponential' as 'constant', 0, 5, 1), "'schedule'", 'exponential');
    throwsTda(() => learningRateAt({ kind: 'onecycle', pctStart: 0 }, 0, 5, 1), 'schedule.pctStart');
    throwsTda(() => learningRateAt({ kind: 'linear', warmupSteps: 1.5 }, 0, 5, 1), 'schedule.warmupSteps');
    throwsTda(() => makeSchedule('cosine', 0, 1), 'totalSteps');
  });
});
