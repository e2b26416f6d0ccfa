/**
 * Interrupting `reproduce dda --quick` (reduced to one canary pair, 200 examples and gradDot,
 * see reproduceChild.ts, so that a run takes seconds): a killed run leaves no visible folder
 * (it is filled under a hidden name), the next run removes the hidden leftovers, and its
 * tables, settings, scores and checkpoints equal an uninterrupted run's bit for bit.
 * A reproduce run does not resume: it is restarted.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../../src/random';
import { tmpDir } from '../helpers/fixtures';
import { ROOT } from './workload';

const CHILD = path.join(__dirname, 'reproduceChild.ts');

function run(out: string, killAfterMs?: number, signal: NodeJS.Signals = 'SIGKILL') {
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', CHILD, out], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill(signal), killAfterMs);
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; dir: string; stderr: string }>((resolve) =>
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      resolve({ code, signal: sig, dir: stdout.trim(), stderr });
    }),
  );
}

/** Every file of a run folder whose content does not depend on the time it ran, relative path to bytes. */
function deterministicFiles(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(r);
      // report.html, explorer.html and explorer.json carry the date; trainer_state.json and runs.csv wall times.
      else if (!/(\.html|explorer\.json|trainer_state\.json|runs\.csv)$/.test(r)) out.set(r, fs.readFileSync(path.join(dir, r)));
    }
  };
  walk('.');
  // runs.csv without its `seconds` column.
  const runs = fs.readFileSync(path.join(dir, 'runs.csv'), 'utf8').trim().split('\n').map((l) => l.split(',').slice(0, -1).join(','));
  out.set('runs.csv (without seconds)', Buffer.from(runs.join('\n')));
  return out;
}

describe('reliability: interrupted reproduce dda --quick', function () {
  this.timeout(900000);
  let work: string;
  before(() => (work = tmpDir('tda-reproduce-kill-')));
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('3 random kills leave nothing visible; the rerun equals an uninterrupted run bit for bit', async () => {
    const runs = path.join(work, 'runs');
    const t0 = Date.now();
    const ref = await run(runs);
    const full = Date.now() - t0;
    assert.equal(ref.code, 0, ref.stderr);
    assert.deepEqual(fs.readdirSync(runs), [path.basename(ref.dir)]);
    const rng = new Rng(16);
    let hidden = 0;
    for (let i = 0; i < 3; i++) {
      const signal: NodeJS.Signals = i === 1 ? 'SIGTERM' : 'SIGKILL';
      const r = await run(runs, rng.uniform(0.15, 0.85) * full, signal);
      if (r.code === 0) continue; // finished before the kill (a loaded machine)
      assert.equal(r.signal, signal, r.stderr);
      const entries = fs.readdirSync(runs);
      assert.deepEqual(entries.filter((e) => !e.startsWith('.')), [path.basename(ref.dir)], `after kill ${i}: only the finished run is visible`);
      hidden = Math.max(hidden, entries.filter((e) => e.startsWith('.')).length);
    }
    assert.ok(hidden >= 1, 'a killed run left its hidden folder (removed by the next run)');
    const again = await run(runs);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(fs.readdirSync(runs).filter((e) => e.startsWith('.')), [], 'the hidden folders of killed runs are gone');
    const a = deterministicFiles(ref.dir);
    const b = deterministicFiles(again.dir);
    assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
    assert.ok(a.size > 15, `compared ${a.size} files`);
    for (const [name, bytes] of a) assert.ok(bytes.equals(b.get(name)!), `${name} differs`);
  });
});
