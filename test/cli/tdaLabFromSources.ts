/**
 * The tda-lab command run from the TypeScript sources (`node --require tsx/cjs`), as
 * bin/tda-lab.js runs it from dist/: tests of new options then need no build first.
 */
import { main } from '../../src/cli/main';

main(process.argv).catch((err: unknown) => {
  process.stderr.write(`tda-lab: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
