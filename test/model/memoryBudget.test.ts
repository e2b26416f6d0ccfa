import * as assert from 'node:assert/strict';
import { TdaError } from '../../src/errors';
import { activationBytesPerRow, checkActivationBudget, checkWeightsFit, WASM_HEAP_BYTES } from '../../src/model/memoryBudget';
import { llamaConfig, parameterCount, SIZE_PRESETS } from '../../src/model/synthetic';

describe('wasm heap budget for a batch', () => {
  const big = llamaConfig(SIZE_PRESETS['0.5b']);
  const weights = parameterCount(big) * 4;

  it('the 0.5B preset: 4 x 32 tokens fit next to its float32 weights, 8 x 64 do not (where the backend aborted), with the batch size that fits', () => {
    // 4 x 32 and 4 x 64 tokens ran on the wasm backend (bench/large-model.ts); 8 x 64 aborted the module.
    assert.doesNotThrow(() => checkActivationBudget({ config: big, batchSize: 4, seqLen: 32, usedBytes: weights }));
    assert.doesNotThrow(() => checkActivationBudget({ config: big, batchSize: 4, seqLen: 64, usedBytes: weights }));
    assert.throws(
      () => checkActivationBudget({ config: big, batchSize: 8, seqLen: 64, usedBytes: weights }),
      (e: unknown) => e instanceof TdaError && e.field === 'batchSize' && /8 x 64 tokens.*at most 6\b/.test(e.message),
    );
  });

  it('the suggested batch size is the largest that passes', () => {
    const perRow = activationBytesPerRow(big);
    for (const seqLen of [16, 128, 256]) {
      let fits = 0;
      while ((fits + 1) * seqLen * perRow <= WASM_HEAP_BYTES * 0.95 - weights) fits++;
      const m = /at most (\d+)/.exec(errorOf(() => checkActivationBudget({ config: big, batchSize: 10_000, seqLen, usedBytes: weights })));
      assert.equal(Number(m?.[1]), fits, `seq ${seqLen}`);
      assert.doesNotThrow(() => checkActivationBudget({ config: big, batchSize: fits, seqLen, usedBytes: weights }));
    }
  });

  it('a forward pass alone (losses) needs far less: 8 x 64 tokens pass, 64 x 512 do not', () => {
    assert.doesNotThrow(() => checkActivationBudget({ config: big, batchSize: 8, seqLen: 64, usedBytes: weights, forwardOnly: true }));
    assert.throws(() => checkActivationBudget({ config: big, batchSize: 64, seqLen: 512, usedBytes: weights, forwardOnly: true }), /64 x 512 tokens/);
  });

  it('says so when not even one sequence fits', () => {
    assert.match(errorOf(() => checkActivationBudget({ config: big, batchSize: 1, seqLen: 4096, usedBytes: weights })), /even one example of 4096 tokens/);
  });

  it('a model whose weights cannot fit is refused before loading, naming its config', () => {
    assert.doesNotThrow(() => checkWeightsFit(big, 'models/half-b'));
    const twoB = llamaConfig({ ...SIZE_PRESETS['0.5b'], numLayers: 104 }); // ~1.8B parameters
    assert.throws(
      () => checkWeightsFit(twoB, 'models/2b'),
      (e: unknown) => e instanceof TdaError && /models\/2b/.test(e.message) && /config\.json/.test(e.message) && /1\.8\dB parameters/.test(e.message),
    );
  });

  it('small models never come near it', () => {
    assert.doesNotThrow(() => checkActivationBudget({ config: llamaConfig(SIZE_PRESETS['5m']), batchSize: 64, seqLen: 256, usedBytes: 100e6 }));
  });
});

function errorOf(f: () => void): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return '';
}
