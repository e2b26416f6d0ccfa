/**
 * Finding Jupyter and running its commands, shared by the kernel installer, the notebook
 * runner and the notebook tests.
 *
 * Jupyter is looked for in this order: the TDA_JUPYTER environment variable (a command,
 * e.g. "/opt/conda/bin/jupyter" or "/usr/bin/python3 -m jupyter"), `jupyter` on PATH, then
 * Debian's `/usr/bin/python3 -m jupyter`. The `python3` first on PATH may be another
 * interpreter without Jupyter (a pyenv one, say), so it is tried last.
 */
import { spawnSync, SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const PROJECT_ROOT = path.resolve(__dirname, '..', '..');
export const KERNEL_NAME = 'tda-lab';
export const NOTEBOOK_DIR = path.join(PROJECT_ROOT, 'notebooks');
/** Executed copies of the notebooks (gitignored). */
export const EXECUTED_DIR = path.join(NOTEBOOK_DIR, 'executed');

let found: string[] | undefined;

function works(cmd: string[], sub: string): boolean {
  const r = spawnSync(cmd[0], [...cmd.slice(1), sub, '--version'], { encoding: 'utf8' });
  return r.status === 0;
}

/** The Jupyter command as argv, checked to have `kernelspec` (and, if asked, `nbconvert`). */
export function jupyterCommand(needNbconvert = false): string[] {
  if (found && (!needNbconvert || works(found, 'nbconvert'))) return found;
  const candidates: string[][] = [];
  if (process.env.TDA_JUPYTER) candidates.push(process.env.TDA_JUPYTER.trim().split(/\s+/));
  candidates.push(['jupyter'], ['/usr/bin/python3', '-m', 'jupyter'], ['python3', '-m', 'jupyter']);
  for (const c of candidates) {
    if (works(c, 'kernelspec') && (!needNbconvert || works(c, 'nbconvert'))) {
      found = c;
      return c;
    }
  }
  throw new Error(
    `no Jupyter${needNbconvert ? ' with nbconvert' : ''} found (tried ${candidates.map((c) => c.join(' ')).join('; ')}).\n` +
      'Install one, e.g. on Debian/Ubuntu: sudo apt-get install jupyter-notebook ' +
      '(or, headless only: jupyter-nbconvert python3-nbclient jupyter-client python3-ipykernel), ' +
      'or point TDA_JUPYTER at your jupyter command.',
  );
}

/** Runs `jupyter <args>`; throws with its output on failure unless `allowFailure`. */
export function jupyter(args: string[], opts: { needNbconvert?: boolean; allowFailure?: boolean; cwd?: string; timeoutMs?: number } = {}): SpawnSyncReturns<string> {
  const cmd = jupyterCommand(opts.needNbconvert);
  const r = spawnSync(cmd[0], [...cmd.slice(1), ...args], {
    encoding: 'utf8',
    cwd: opts.cwd ?? PROJECT_ROOT,
    timeout: opts.timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
    // Quiets "Debugger warning: It seems that frozen modules are being used" from Python 3.11.
    env: { ...process.env, PYDEVD_DISABLE_FILE_VALIDATION: '1' },
  });
  if (!opts.allowFailure && r.status !== 0) {
    const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim();
    throw new Error(`jupyter ${args.slice(0, 2).join(' ')} failed (exit ${r.status ?? r.signal}):\n${out.slice(-6000)}`);
  }
  return r;
}

/** The notebooks shipped in notebooks/, in order. */
export function notebookFiles(): string[] {
  return fs
    .readdirSync(NOTEBOOK_DIR)
    .filter((f) => /^\d\d-.*\.ipynb$/.test(f))
    .sort()
    .map((f) => path.join(NOTEBOOK_DIR, f));
}

/** Where the installed kernel spec lives, or null when it is not installed. */
export function installedKernelDir(): string | null {
  const r = jupyter(['kernelspec', 'list', '--json'], { allowFailure: true });
  if (r.status !== 0) return null;
  const specs = JSON.parse(r.stdout).kernelspecs as Record<string, { resource_dir: string }>;
  return specs[KERNEL_NAME]?.resource_dir ?? null;
}
