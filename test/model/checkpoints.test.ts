import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isAdapterDir, listCheckpoints } from '../../src/model/checkpoints';
import { FIXTURE, tempDirs, throwsTda } from '../helpers/errors';

/** Copies the fixture adapter into dir/name. */
function addCheckpoint(dir: string, name: string): string {
  const to = path.join(dir, name);
  fs.cpSync(path.join(FIXTURE, 'adapter'), to, { recursive: true });
  return to;
}

describe('training checkpoints', () => {
  const tmp = tempDirs();
  afterEach(() => tmp.cleanup());

  it('lists checkpoint-<N> folders in numeric step order', () => {
    const run = tmp.make();
    for (const n of ['checkpoint-2', 'checkpoint-10', 'checkpoint-9']) addCheckpoint(run, n);
    // Not checkpoints: other folders, files, non-numeric suffixes.
    fs.mkdirSync(path.join(run, 'runs'));
    fs.mkdirSync(path.join(run, 'checkpoint-best'));
    fs.writeFileSync(path.join(run, 'checkpoint-3'), 'a file, not a folder');
    fs.writeFileSync(path.join(run, 'trainer_state.json'), '{}');
    assert.deepEqual(listCheckpoints(run), [
      { name: 'checkpoint-2', dir: path.join(run, 'checkpoint-2'), step: 2 },
      { name: 'checkpoint-9', dir: path.join(run, 'checkpoint-9'), step: 9 },
      { name: 'checkpoint-10', dir: path.join(run, 'checkpoint-10'), step: 10 },
    ]);
  });

  it('a checkpoint folder without an adapter is an error naming it', () => {
    const run = tmp.make();
    addCheckpoint(run, 'checkpoint-1');
    fs.mkdirSync(path.join(run, 'checkpoint-5'));
    fs.writeFileSync(path.join(run, 'checkpoint-5', 'optimizer.pt'), '');
    throwsTda(() => listCheckpoints(run), path.join(run, 'checkpoint-5'), 'adapter_config.json');
    fs.writeFileSync(path.join(run, 'checkpoint-5', 'adapter_config.json'), '{}');
    throwsTda(() => listCheckpoints(run), path.join(run, 'checkpoint-5'), 'adapter_model.safetensors');
  });

  it('no checkpoints, a missing directory, or duplicate steps are errors naming the directory', () => {
    const run = tmp.make();
    fs.mkdirSync(path.join(run, 'logs'));
    throwsTda(() => listCheckpoints(run), run, 'no checkpoint-* folders');
    throwsTda(() => listCheckpoints(path.join(run, 'nope')), path.join(run, 'nope'), 'not found');
    addCheckpoint(run, 'checkpoint-7');
    addCheckpoint(run, 'checkpoint-007');
    throwsTda(() => listCheckpoints(run), run, 'step 7');
  });

  it('isAdapterDir needs adapter_config.json and adapter weights', () => {
    const dir = tmp.make();
    assert.equal(isAdapterDir(path.join(FIXTURE, 'adapter')), true);
    assert.equal(isAdapterDir(FIXTURE), false);
    assert.equal(isAdapterDir(dir), false);
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), '{}');
    assert.equal(isAdapterDir(dir), false);
    fs.writeFileSync(path.join(dir, 'adapter_model.bin'), '');
    assert.equal(isAdapterDir(dir), true, 'loadAdapter then explains how to convert the .bin');
  });
});
