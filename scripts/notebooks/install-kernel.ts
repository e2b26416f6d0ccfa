/**
 * `npm run kernel:install`: installs the `tda-lab` Jupyter kernel (tslab, "TypeScript
 * (tda-lab)") for the current user, with absolute paths into this checkout.
 *
 *   npm run kernel:install                       # per-user kernel registry
 *   npm run kernel:install -- --sys-prefix       # or --prefix DIR: passed to `jupyter kernelspec install`
 *   TDA_JUPYTER="/usr/bin/python3 -m jupyter" npm run kernel:install   # a specific Jupyter
 *
 * What it does:
 *  1. links notebooks/node_modules/tda-lab -> the project root, so `import * as tda from
 *     'tda-lab'` in a notebook resolves to this checkout's built package (dist/), both for
 *     tslab's type checker (which looks in node_modules folders above the notebook) and for
 *     Node at run time (the kernel also puts that folder on NODE_PATH);
 *  2. writes kernels/tda-lab/kernel.template.json with this Node binary and this checkout's
 *     node_modules/.bin/tslab filled in, and installs it with `jupyter kernelspec install`.
 * Re-run it after moving the checkout or changing Node installations.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { installedKernelDir, jupyter, jupyterCommand, KERNEL_NAME, NOTEBOOK_DIR, PROJECT_ROOT } from './jupyter';

const SPEC_DIR = path.join(PROJECT_ROOT, 'kernels', KERNEL_NAME);
const LINK_DIR = path.join(NOTEBOOK_DIR, 'node_modules');

/** notebooks/node_modules/tda-lab -> ../.. (relative, so it survives moving the checkout). */
export function linkPackage(): string {
  const link = path.join(LINK_DIR, 'tda-lab');
  fs.mkdirSync(LINK_DIR, { recursive: true });
  const target = path.relative(LINK_DIR, PROJECT_ROOT);
  let current: string | null = null;
  try {
    current = fs.readlinkSync(link);
  } catch {
    current = null;
  }
  if (current !== target) {
    fs.rmSync(link, { recursive: true, force: true });
    fs.symlinkSync(target, link, process.platform === 'win32' ? 'junction' : 'dir');
  }
  return link;
}

/** kernel.json for this checkout: the template with @NODE@ and @PROJECT@ filled in. */
export function kernelJson(): Record<string, unknown> {
  const fill = (v: unknown): unknown =>
    typeof v === 'string'
      ? v.replace(/@NODE@/g, process.execPath).replace(/@PROJECT@/g, PROJECT_ROOT)
      : Array.isArray(v)
        ? v.map(fill)
        : v && typeof v === 'object'
          ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x)]))
          : v;
  return fill(JSON.parse(fs.readFileSync(path.join(SPEC_DIR, 'kernel.template.json'), 'utf8'))) as Record<string, unknown>;
}

/**
 * Installs the kernel spec for this checkout (see the file comment); `passThrough` goes to
 * `jupyter kernelspec install` (default scope: --user). Returns where Jupyter put it.
 */
export function installKernel(passThrough: string[] = []): string {
  const tslab = path.join(PROJECT_ROOT, 'node_modules', '.bin', 'tslab');
  if (!fs.existsSync(tslab)) throw new Error(`${tslab} is missing: run \`npm install\` first (tslab is a devDependency)`);
  linkPackage();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-kernel-'));
  try {
    const dir = path.join(tmp, KERNEL_NAME);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'kernel.json'), JSON.stringify(kernelJson(), null, 2) + '\n');
    for (const f of fs.readdirSync(SPEC_DIR)) if (/^logo-.*\.(png|svg)$/.test(f)) fs.copyFileSync(path.join(SPEC_DIR, f), path.join(dir, f));
    const scope = passThrough.some((a) => a === '--sys-prefix' || a.startsWith('--prefix')) ? [] : ['--user'];
    jupyter(['kernelspec', 'install', ...scope, '--replace', '--name', KERNEL_NAME, ...passThrough, dir]);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const where = installedKernelDir();
  if (!where) throw new Error(`jupyter kernelspec list does not show '${KERNEL_NAME}' after installing it`);
  return where;
}

/** True when Jupyter's `tda-lab` kernel starts this checkout's tslab with this Node. */
export function kernelIsCurrent(): boolean {
  const where = installedKernelDir();
  if (!where) return false;
  try {
    const installed = JSON.parse(fs.readFileSync(path.join(where, 'kernel.json'), 'utf8'));
    return JSON.stringify(installed.argv) === JSON.stringify(kernelJson().argv) && fs.existsSync(path.join(LINK_DIR, 'tda-lab'));
  } catch {
    return false;
  }
}

function main(): void {
  if (!fs.existsSync(path.join(PROJECT_ROOT, 'dist', 'index.js'))) {
    console.warn('note: dist/ is not built yet; run `npm run build` before opening the notebooks');
  }
  const where = installKernel(process.argv.slice(2));
  console.log(`installed Jupyter kernel '${KERNEL_NAME}' (TypeScript (tda-lab)) in ${where}`);
  console.log(`  jupyter: ${jupyterCommand().join(' ')}`);
  console.log(`  starts:  ${(kernelJson().argv as string[]).join(' ')}`);
  console.log(`  'tda-lab' in notebooks resolves through notebooks/node_modules/tda-lab -> ${PROJECT_ROOT}`);
}

if (require.main === module) {
  try {
    main();
  } catch (e) {
    console.error(`kernel:install: ${(e as Error).message}`);
    process.exit(1);
  }
}
