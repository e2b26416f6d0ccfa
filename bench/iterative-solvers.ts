/**
 * Iterations conjugate gradients and LiSSA need to reach a relative residual of 1e-3 on
 * gradient blocks of experiment size (n = 800 training gradients, d = 1,024 and 4,096) with
 * condition numbers 1e3 and 1e4, and the residual LiSSA reaches at its default cap.
 * `npx tsx bench/iterative-solvers.ts [lissaCap]` (default cap for the "needs" column: 20000).
 */
import { initBackend } from '../src/runtime/backend';
import { ConjugateGradient } from '../src/attribution/conjugateGradient';
import { Lissa } from '../src/attribution/lissa';
import { IterativeSolver } from '../src/attribution/iterativeSolver';
import { inMemorySource } from '../src/gradients/types';
import { conditionedGradients } from '../test/attribution/conditionedGradients';

async function main(): Promise<void> {
  await initBackend('wasm');
  const bigCap = Number(process.argv[2] ?? 20000);
  const rows: string[] = ['| d | condition | cg iterations | cg residual | cg s | lissa (cap 1000) residual | lissa iterations to 1e-3 (cap ' + bigCap + ') | lissa s |', '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'];
  for (const dim of [1024, 4096]) {
    for (const condition of [1e3, 1e4]) {
      const { train, test } = conditionedGradients(800, 8, [{ name: 'block', dim, condition, scale: 1 }], 11);
      const run = (m: IterativeSolver) => {
        const t0 = Date.now();
        m.cache(inMemorySource(train));
        m.solve(test);
        return { c: m.convergence[0], s: (Date.now() - t0) / 1000 };
      };
      const quiet = { onWarning: () => undefined };
      const cg = run(new ConjugateGradient(quiet));
      const lissaDefault = run(new Lissa(quiet));
      const lissaLong = run(new Lissa({ ...quiet, maxIterations: bigCap }));
      const lissaNeeds = lissaLong.c.converged ? String(lissaLong.c.iterations) : `> ${bigCap} (residual ${lissaLong.c.relativeResidual?.toExponential(1)})`;
      rows.push(`| ${dim} | ${condition} | ${cg.c.iterations} | ${cg.c.relativeResidual?.toExponential(1)} | ${cg.s.toFixed(1)} | ${lissaDefault.c.relativeResidual?.toExponential(1)} | ${lissaNeeds} | ${lissaLong.s.toFixed(1)} |`);
      console.log(rows[rows.length - 1]);
    }
  }
  console.log(rows.join('\n'));
}

void main();
