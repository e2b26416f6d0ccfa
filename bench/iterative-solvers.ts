/**
 * Iterations conjugate gradients and LiSSA need to reach a relative residual of 1e-3 on
 * gradient blocks of experiment size (n = 800 training gradients, d = 1,024 and 4,096,
 * 8 queries) with condition numbers 1e3 and 1e4, the residual LiSSA reaches at its default
 * cap, and how far each one's scores (queries x training examples) are from those of a dense
 * float64 solve.
 *
 *   npx tsx bench/iterative-solvers.ts [lissaCap]
 *
 * lissaCap (default 10000) bounds the run that counts LiSSA's iterations to 1e-3; 0 skips it.
 */
import { initBackend } from '../src/runtime/backend';
import { ConjugateGradient } from '../src/attribution/conjugateGradient';
import { Lissa } from '../src/attribution/lissa';
import { IterativeSolver } from '../src/attribution/iterativeSolver';
import { GradientSet, inMemorySource } from '../src/gradients/types';
import { conditionedGradients, defaultDamping, denseSolve } from '../test/attribution/conditionedGradients';

/** ||S - S_ref|| / ||S_ref|| for the scores S = X G^T of one block. */
function scoreError(x: Float32Array, ref: Float64Array, G: Float32Array, n: number, d: number, nT: number): number {
  let e = 0;
  let s = 0;
  for (let q = 0; q < nT; q++) {
    for (let i = 0; i < n; i++) {
      let a = 0;
      let b = 0;
      for (let c = 0; c < d; c++) {
        a += x[q * d + c] * G[i * d + c];
        b += ref[q * d + c] * G[i * d + c];
      }
      e += (a - b) ** 2;
      s += b * b;
    }
  }
  return Math.sqrt(e / s);
}

async function main(): Promise<void> {
  await initBackend('wasm');
  const bigCap = Number(process.argv[2] ?? 10000);
  const n = 800;
  const nT = 8;
  const rows = [
    `| d | condition | cg iterations to 1e-3 | cg score error | lissa residual at 1,000 | lissa score error at 1,000 | lissa iterations to 1e-3 (cap ${bigCap}) |`,
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const dim of [1024, 4096]) {
    for (const condition of [1e3, 1e4]) {
      const { train, test } = conditionedGradients(n, nT, [{ name: 'block', dim, condition, scale: 1 }], 11);
      const G = train.blocks[0].data;
      const ref = denseSolve(G, n, dim, defaultDamping(G), test.blocks[0].data, nT);
      const run = (m: IterativeSolver): { x: GradientSet; seconds: number } => {
        const t0 = Date.now();
        m.cache(inMemorySource(train));
        const x = m.solve(test);
        return { x, seconds: (Date.now() - t0) / 1000 };
      };
      const quiet = { onWarning: () => undefined };
      const cg = new ConjugateGradient(quiet);
      const cgRun = run(cg);
      const lissa = new Lissa(quiet);
      const lissaRun = run(lissa);
      let needs = 'not run';
      if (bigCap > 0) {
        const long = new Lissa({ ...quiet, maxIterations: bigCap });
        run(long);
        const c = long.convergence[0];
        needs = c.converged ? String(c.iterations) : `> ${bigCap} (residual ${c.relativeResidual?.toExponential(1)})`;
      }
      const c = cg.convergence[0];
      const l = lissa.convergence[0];
      rows.push(
        `| ${dim} | ${condition} | ${c.iterations} (residual ${c.relativeResidual?.toExponential(1)}, ${cgRun.seconds.toFixed(1)} s) | ${scoreError(cgRun.x.blocks[0].data, ref, G, n, dim, nT).toExponential(1)} | ${l.relativeResidual?.toExponential(1)} (${lissaRun.seconds.toFixed(1)} s) | ${scoreError(lissaRun.x.blocks[0].data, ref, G, n, dim, nT).toExponential(1)} | ${needs} |`,
      );
      console.log(rows[rows.length - 1]);
    }
  }
  console.log(rows.join('\n'));
}

void main();
