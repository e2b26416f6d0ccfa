import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { nativeAddon } from '../../src/runtime/nativeAddon';

const ROOT = path.join(__dirname, '..', '..');

/** `tda-lab info` from the TypeScript sources, with extra environment variables. */
function info(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--require', require.resolve('tsx/cjs'), path.join(__dirname, 'tdaLabFromSources.ts'), ...args, 'info'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, TDA_LAB_NATIVE: 'auto', ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('tda-lab info (command line)', function () {
  this.timeout(60000);

  it('prints the backend, the matrix-product path, worker threads and heap limits', () => {
    const r = info(['--backend', 'wasm']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^backend: wasm \(tfjs 4\.22\.0\)$/m);
    if (nativeAddon()) {
      assert.match(r.stdout, /^matrix products: native BLAS, OpenBLAS \d+\.\d+\.\d+/m);
      assert.match(r.stdout, /^native BLAS: core \S+, 1 thread per call .*libopenblas/m);
    } else {
      assert.match(r.stdout, /^matrix products: XNNPACK .*not available.*apt-get install gcc libopenblas-dev/m);
    }
    assert.match(r.stdout, /^wasm heap: \d+ MB now, at most 4096 MB per thread/m);
    assert.match(r.stdout, /^worker threads: \d+ by default/m);
  });

  it('says when the native path is switched off, or not built, and what to install', () => {
    const off = info(['--backend', 'wasm', '--native', 'off']);
    assert.equal(off.code, 0, off.stderr);
    assert.match(off.stdout, /^matrix products: XNNPACK \(wasm( SIMD)?\); native BLAS (switched off|not available)/m);
    const absent = info(['--backend', 'wasm'], { TDA_LAB_NATIVE_ADDON: path.join(ROOT, 'native', 'build', 'absent.node') });
    assert.equal(absent.code, 0, absent.stderr);
    assert.match(absent.stdout, /^matrix products: XNNPACK .*absent\.node was not built; to enable: apt-get install gcc libopenblas-dev/m);
    const forced = info(['--backend', 'wasm', '--native', 'on'], { TDA_LAB_NATIVE_ADDON: path.join(ROOT, 'native', 'build', 'absent.node') });
    assert.equal(forced.code, 1);
    assert.match(forced.stderr, /^tda-lab: 'native': native BLAS kernels are not available .*apt-get install gcc libopenblas-dev/);
    const bad = info(['--native', 'yes']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /'--native <mode>' argument 'yes' is invalid/);
  });
});
