/**
 * Fuzzing the gradient store's readers (manifest.json and its shard files, read through
 * storeSource as scoring does) and trainer_state.json with the checkpoint listing.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { GradientStore } from '../../src/gradients/store/gradientStore';
import { MANIFEST_FILE } from '../../src/gradients/store/manifest';
import { storeSource } from '../../src/gradients/store/storeSource';
import { checkpointLearningRates, readTrainerState } from '../../src/train/trainerState';
import { listCheckpoints } from '../../src/model/checkpoints';
import { FIXTURE, tempDirs } from '../helpers/errors';
import { assertMixed, bytePlanArb, expectErrorOrValid, fuzzRuns, jsonPlanArb, mutateBytes, mutateJson, mutateText, newOutcome, sometimesBytesArb } from './mutate';

const HASH = (c: string) => c.repeat(64);

/** Read a whole store as scoring does: every shard, checked against the manifest's layout. */
function readStore(dir: string): { n: number; rows: number; blocks: { name: string; dim: number }[] } {
  const store = GradientStore.openExisting(dir);
  const source = storeSource(store);
  let rows = 0;
  for (const { start, set } of source.chunks()) {
    assert.equal(start, rows, 'shards arrive in order, without gaps');
    set.blocks.forEach((b, i) => {
      assert.equal(b.dim, source.blocks[i].dim);
      assert.equal(b.data.length, set.n * b.dim, `${b.name}: data does not match [n, dim]`);
    });
    assert.equal(set.losses?.length, set.n);
    rows += set.n;
  }
  // All at once, as score does for the methods that need every training gradient in memory.
  const all = store.readAll();
  all.blocks.forEach((b) => assert.equal(b.data.length, all.n * b.dim, b.name));
  assert.equal(all.losses?.length, all.n);
  return { n: source.n, rows, blocks: source.blocks };
}

describe('fuzz: gradient store and trainer state readers', function () {
  const tmp = tempDirs('tda-fuzz-store-');
  let dir: string;
  before(() => {
    dir = tmp.make();
  });
  after(() => tmp.cleanup());

  it('store manifests and shard files: mutations end in a one-line TdaError or shards that match the manifest', () => {
    const storeDir = path.join(dir, 'store');
    const store = GradientStore.open(storeDir, { modelHash: HASH('a'), adapterHash: HASH('b'), datasetHash: HASH('c'), n: 5, mask: 'response', shardSize: 2, dtype: 'F16' });
    for (let i = 0; i < 3; i++) {
      const n = i < 2 ? 2 : 1;
      store.importShard(i, {
        n,
        losses: Float32Array.from({ length: n }, (_, j) => 1 + j),
        blocks: [
          { name: 'A', shape: [2, 3], dim: 6, data: Float32Array.from({ length: n * 6 }, (_, j) => j / 8) },
          { name: 'B', shape: [3], dim: 3, data: Float32Array.from({ length: n * 3 }, (_, j) => -j) },
        ],
      });
    }
    const manifestFile = path.join(storeDir, MANIFEST_FILE);
    const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
    const shardFiles = fs.readdirSync(storeDir).filter((f) => f.startsWith('shard-')).map((f) => path.join(storeDir, f));
    const shardBytes = shardFiles.map((f) => fs.readFileSync(f));
    const values = ['tda-lab-gradient-store', 'shard-00000.safetensors', 'shard-00001.safetensors', '../manifest.json', 'F32', 'BF16', 'full', 1e7, 2 ** 40, [2, 3], { kind: 'gaussian', dim: 4, seed: 1 }, { name: 'A', shape: [1e12], dim: 1e12 }, { name: 'C', shape: [2 ** 31, 2 ** 31], dim: 2 ** 62 }];
    const outcome = newOutcome();
    fc.assert(
      fc.property(jsonPlanArb, fc.option(bytePlanArb, { freq: 3 }), fc.nat(), (plan, shardPlan, which) => {
        shardFiles.forEach((f, i) => fs.writeFileSync(f, shardBytes[i]));
        if (shardPlan) {
          // A shard changed on disk (in place, so its size may still match the manifest).
          const i = which % shardFiles.length;
          const bytes = mutateBytes(shardBytes[i], shardPlan.map((op) => ({ ...op, kind: op.kind === 'truncate' || op.kind === 'extend' ? 'flip' : op.kind })));
          fs.writeFileSync(shardFiles[i], bytes);
          fs.writeFileSync(manifestFile, JSON.stringify(manifest));
        } else {
          fs.writeFileSync(manifestFile, mutateJson(manifest, plan, values));
        }
        expectErrorOrValid(outcome, storeDir, () => readStore(storeDir), (r) => {
          assert.equal(r.rows, r.n, 'the shards hold every example once');
        });
      }),
      fuzzRuns(700),
    );
    assertMixed(outcome, 'store');
  });

  it('checkpoint-* folder listings: odd names and contents end in a one-line TdaError or checkpoints in step order', () => {
    const names = ['checkpoint-0', 'checkpoint-3', 'checkpoint-03', 'checkpoint-10', 'checkpoint-9', 'checkpoint-99999999999999999999', 'checkpoint--1', 'checkpoint-1e3', 'checkpoint-', 'Checkpoint-4', 'checkpoint-5 ', 'other'];
    const kinds = ['adapter', 'configOnly', 'empty', 'file', 'binOnly'] as const;
    let round = 0;
    const outcome = newOutcome();
    fc.assert(
      fc.property(fc.uniqueArray(fc.record({ name: fc.constantFrom(...names), kind: fc.constantFrom(...kinds) }), { selector: (e) => e.name, minLength: 1, maxLength: 5 }), (entries) => {
        const run = path.join(dir, `listing-${round++}`);
        fs.mkdirSync(run);
        for (const { name, kind } of entries) {
          const cp = path.join(run, name);
          if (kind === 'file') {
            fs.writeFileSync(cp, 'not a folder');
            continue;
          }
          fs.mkdirSync(cp);
          if (kind !== 'empty') fs.copyFileSync(path.join(FIXTURE, 'adapter', 'adapter_config.json'), path.join(cp, 'adapter_config.json'));
          if (kind === 'adapter') fs.copyFileSync(path.join(FIXTURE, 'adapter', 'adapter_model.safetensors'), path.join(cp, 'adapter_model.safetensors'));
          if (kind === 'binOnly') fs.writeFileSync(path.join(cp, 'adapter_model.bin'), 'pickle');
        }
        expectErrorOrValid(outcome, run, () => listCheckpoints(run), (cps) => {
          assert.ok(cps.length > 0);
          cps.forEach((c, i) => {
            assert.ok(Number.isSafeInteger(c.step) && c.step >= 0, `${c.name}: step ${c.step}`);
            if (i > 0) assert.ok(c.step > cps[i - 1].step, 'in increasing step order, no step twice');
          });
        });
        fs.rmSync(run, { recursive: true });
      }),
      fuzzRuns(300),
    );
    assertMixed(outcome, 'checkpoint listing');
  });

  it('trainer_state.json with checkpoint-* folders: mutations end in a one-line TdaError or finite learning rates per checkpoint', () => {
    const run = path.join(dir, 'run');
    for (const step of [0, 3, 6]) {
      const cp = path.join(run, `checkpoint-${step}`);
      fs.mkdirSync(cp, { recursive: true });
      for (const f of ['adapter_config.json', 'adapter_model.safetensors']) fs.copyFileSync(path.join(FIXTURE, 'adapter', f), path.join(cp, f));
    }
    const state = {
      best_metric: null,
      best_model_checkpoint: null,
      epoch: 2,
      eval_steps: 500,
      global_step: 6,
      is_hyper_param_search: false,
      is_local_process_zero: true,
      is_world_process_zero: true,
      log_history: [1, 2, 3, 4, 5, 6].map((step) => ({ epoch: step / 3, learning_rate: 0.003 * (1 - step / 7), loss: 2 / step, step })).concat([{ epoch: 2, step: 6, train_loss: 1.1 } as never]),
      logging_steps: 1,
      max_steps: 6,
      num_input_tokens_seen: 0,
      num_train_epochs: 2,
      save_steps: 3,
      total_flos: 0,
      train_batch_size: 4,
      trial_name: null,
      trial_params: null,
    };
    const file = path.join(run, 'trainer_state.json');
    const outcome = newOutcome();
    fc.assert(
      fc.property(jsonPlanArb, sometimesBytesArb, (plan, bytePlan) => {
        const text = mutateJson(state, plan, ['step', 'learning_rate', 'log_history', -3, 1e-3]);
        fs.writeFileSync(file, bytePlan ? mutateText(text, bytePlan) : text);
        expectErrorOrValid(
          outcome,
          run,
          () => ({ state: readTrainerState(run), rates: checkpointLearningRates(run) }),
          ({ state: s, rates }) => {
            assert.ok(Array.isArray(s.log_history));
            assert.deepEqual(rates.map((r) => r.step), [0, 3, 6]);
            for (const r of rates) assert.ok(Number.isFinite(r.learningRate), `checkpoint ${r.step}: learning rate ${r.learningRate}`);
          },
        );
      }),
      fuzzRuns(700),
    );
    assertMixed(outcome, 'trainer state');
  });
});
