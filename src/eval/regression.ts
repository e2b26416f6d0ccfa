/** Ordinary least squares of y on one predictor, with the slope's two-sided t-test (via jstat). */
import { TdaError } from '../errors';

interface JStatOls {
  coef: number[];
  R2: number;
  t: { p: number[]; se: number[] };
}
const { jStat } = require('jstat') as { jStat: { models: { ols(y: number[], x: number[][]): JStatOls } } };

export interface LinearFit {
  slope: number;
  intercept: number;
  r2: number;
  /** Two-sided p-value of slope = 0. */
  pValue: number;
  slopeStdError: number;
  n: number;
}

export function linearRegression(x: ArrayLike<number>, y: ArrayLike<number>): LinearFit {
  if (x.length !== y.length) throw new TdaError(`x has ${x.length} values, y has ${y.length}`, { field: 'y' });
  const pairs: [number, number][] = [];
  for (let i = 0; i < x.length; i++) if (Number.isFinite(x[i]) && Number.isFinite(y[i])) pairs.push([x[i], y[i]]);
  if (pairs.length < 3) throw new TdaError(`needs at least 3 finite points, got ${pairs.length}`, { field: 'x' });
  const xs = pairs.map((p) => p[0]);
  if (Math.max(...xs) === Math.min(...xs)) throw new TdaError('the predictor is constant', { field: 'x' });
  const m = jStat.models.ols(
    pairs.map((p) => p[1]),
    pairs.map((p) => [1, p[0]]),
  );
  return { intercept: m.coef[0], slope: m.coef[1], r2: m.R2, pValue: m.t.p[1], slopeStdError: m.t.se[1], n: pairs.length };
}
