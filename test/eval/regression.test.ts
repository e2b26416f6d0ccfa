import * as assert from 'node:assert/strict';
import { linearRegression } from '../../src/eval/regression';

describe('linearRegression', () => {
  it('matches the closed-form least-squares fit and its t statistic', () => {
    const x = [1, 2, 3, 4, 5, 6];
    const y = [2.1, 3.9, 6.2, 7.8, 10.1, 12.2];
    const n = x.length;
    const mx = x.reduce((a, b) => a + b) / n;
    const my = y.reduce((a, b) => a + b) / n;
    const sxy = x.reduce((s, xi, i) => s + (xi - mx) * (y[i] - my), 0);
    const sxx = x.reduce((s, xi) => s + (xi - mx) ** 2, 0);
    const slope = sxy / sxx;
    const intercept = my - slope * mx;
    const sse = y.reduce((s, yi, i) => s + (yi - intercept - slope * x[i]) ** 2, 0);
    const sst = y.reduce((s, yi) => s + (yi - my) ** 2, 0);
    const se = Math.sqrt(sse / (n - 2) / sxx);
    const fit = linearRegression(x, y);
    assert.ok(Math.abs(fit.slope - slope) < 1e-10);
    assert.ok(Math.abs(fit.intercept - intercept) < 1e-10);
    assert.ok(Math.abs(fit.r2 - (1 - sse / sst)) < 1e-10);
    assert.ok(Math.abs(fit.slopeStdError - se) < 1e-10);
    assert.ok(fit.pValue < 1e-5, `a strong linear trend is significant, p = ${fit.pValue}`);
  });

  it('gives a large p-value for unrelated data and refuses degenerate input', () => {
    const noisy = linearRegression([1, 2, 3, 4, 5, 6, 7, 8], [5, 3, 6, 2, 5, 3, 6, 2]);
    assert.ok(noisy.pValue > 0.3, `p = ${noisy.pValue}`);
    assert.throws(() => linearRegression([1, 1, 1], [1, 2, 3]), /'x'.*constant/);
    assert.throws(() => linearRegression([1, 2], [1, 2]), /at least 3/);
  });
});
