/** Fuzzing the safetensors reader: mutated bytes and mutated headers of valid files. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors';
import { FIXTURE, tempDirs } from '../helpers/errors';
import { assertMixed, bytePlanArb, expectErrorOrValid, fuzzRuns, jsonPlanArb, mutateBytes, mutateJson, newOutcome } from './mutate';
import { checkOpenedFile, joinSafetensors, relayout, SAFETENSORS_VALUES, splitSafetensors } from './safetensorsFiles';

/** Every dtype, a scalar, an empty tensor and metadata, as the project's own writer lays them out. */
function writeAllDtypes(file: string): void {
  writeSafetensors(
    file,
    {
      f32: { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-3, -7]) },
      f16: { dtype: 'F16', shape: [4], data: Float32Array.from([1, 2, -0.5, 65504]) },
      bf16: { dtype: 'BF16', shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) },
      f64: { shape: [3], data: Float64Array.from([1, 2, 3]) },
      i64: { shape: [2], data: BigInt64Array.from([5n, -6n]) },
      i32: { shape: [3], data: Int32Array.from([1, -2, 3]) },
      u8: { shape: [3], data: Uint8Array.from([1, 2, 255]) },
      bool: { dtype: 'BOOL', shape: [2], data: Uint8Array.from([0, 1]) },
      scalar: { shape: [], data: Float32Array.from([42]) },
      empty: { shape: [0, 4], data: new Float32Array(0) },
    },
    { format: 'pt', note: 'fuzz base' },
  );
}

describe('fuzz: safetensors reader', function () {
  const tmp = tempDirs('tda-fuzz-st-');
  let dir: string;
  const bases: { name: string; bytes: Uint8Array }[] = [];

  before(() => {
    dir = tmp.make();
    const own = path.join(dir, 'own.safetensors');
    writeAllDtypes(own);
    bases.push({ name: 'own', bytes: fs.readFileSync(own) });
    bases.push({ name: 'adapter', bytes: fs.readFileSync(path.join(FIXTURE, 'adapter', 'adapter_model.safetensors')) });
    bases.push({ name: 'grads', bytes: fs.readFileSync(path.join(FIXTURE, 'expected_grads.safetensors')) });
  });
  after(() => tmp.cleanup());

  /** Open `bytes` as a file: a clean TdaError, or a file whose every tensor checks out; never a big allocation. */
  function openCase(bytes: Uint8Array, outcome = newOutcome()): void {
    const file = path.join(dir, 'case.safetensors');
    fs.writeFileSync(file, bytes);
    expectErrorOrValid(
      outcome,
      file,
      () => SafetensorsFile.open(file),
      (st) => {
        try {
          const headerEnd = 8 + Number(Buffer.from(bytes).readBigUInt64LE(0));
          checkOpenedFile(st, bytes.length, headerEnd);
        } finally {
          st.close();
        }
      },
    );
  }

  it('byte-level mutations (flips, truncations, extensions, inserts) end in a one-line TdaError or a consistent file', () => {
    const outcome = newOutcome();
    fc.assert(
      fc.property(fc.nat(), bytePlanArb, (which, plan) => {
        const base = bases[which % bases.length].bytes;
        const headerEnd = 8 + Number(Buffer.from(base).readBigUInt64LE(0));
        openCase(mutateBytes(base, plan, headerEnd), outcome);
      }),
      fuzzRuns(1200),
    );
    assertMixed(outcome, 'safetensors bytes');
  });

  it('header mutations (dtypes, shapes, offsets, metadata, duplicate keys) end in a one-line TdaError or a consistent file', () => {
    const outcome = newOutcome();
    fc.assert(
      fc.property(fc.nat(), jsonPlanArb, fc.integer({ min: -64, max: 64 }), fc.boolean(), (which, plan, dataChange, laidOut) => {
        const { header, data } = splitSafetensors(bases[which % bases.length].bytes);
        const text = mutateJson(header, plan, SAFETENSORS_VALUES);
        // Either lay the mutated entries out again (a changed dtype or shape then stays consistent),
        // or shorten or lengthen the data section a little, so offsets meet a wrong-sized file.
        const again = laidOut ? relayout(text, data) : null;
        if (again) return openCase(joinSafetensors(again.headerText, again.data), outcome);
        const resized = dataChange >= 0 ? Buffer.concat([data, Buffer.alloc(dataChange % 9 === 0 ? dataChange : 0)]) : data.slice(0, data.length + (dataChange % 5 === 0 ? dataChange : 0));
        openCase(joinSafetensors(text, resized), outcome);
      }),
      fuzzRuns(2000),
    );
    assertMixed(outcome, 'safetensors header');
  });
});
