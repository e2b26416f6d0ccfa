/**
 * Writes one reference case's checkpoint, adapter and sequences (referenceCases.ts) for the
 * PyTorch generator script:  npx tsx test/helpers/writeReferenceInputs.ts <case> <dir>
 */
import { REFERENCE_CASES, writeReferenceInputs } from './referenceCases';

const [name, dir] = process.argv.slice(2);
const c = REFERENCE_CASES[name];
if (!c || !dir) {
  process.stderr.write(`usage: writeReferenceInputs.ts <${Object.keys(REFERENCE_CASES).join('|')}> <dir>\n`);
  process.exit(2);
}
writeReferenceInputs(c, dir);
