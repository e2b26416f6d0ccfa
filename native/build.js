#!/usr/bin/env node
/**
 * Builds the native BLAS kernels (native/tda_native.c, native_elementwise.c, scoring.c) into native/build/tda_native.node,
 * run by `npm install` / `npm ci` as the package's install script.
 *
 * A plain `cc` call with the Node-API headers of the npm package node-api-headers (no
 * download of Node's headers, no node-gyp). Where there is no compiler or no OpenBLAS, it
 * prints one line saying what to install and succeeds: tda-lab then runs on the wasm
 * backend's own kernels (XNNPACK). TDA_LAB_NATIVE_BUILD=0 skips the build.
 */
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const here = __dirname;
const outDir = path.join(here, 'build');
const out = path.join(outDir, 'tda_native.node');
const INSTALL_HINT = 'apt-get install gcc libopenblas-dev';

function giveUp(reason) {
  fs.rmSync(out, { force: true });
  console.log(`tda-lab: native BLAS kernels not built (${reason}); to build them: ${INSTALL_HINT}, then npm install again. Running on the wasm backend's own kernels (XNNPACK).`);
  process.exit(0);
}

function main() {
  if (process.env.TDA_LAB_NATIVE_BUILD === '0') giveUp('TDA_LAB_NATIVE_BUILD=0');
  if (process.platform !== 'linux') giveUp(`built on Linux only, this is ${process.platform}`);
  const cc = process.env.CC || 'cc';
  const probe = spawnSync(cc, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) giveUp(`no C compiler '${cc}'`);
  let include;
  try {
    include = require('node-api-headers').include_dir;
  } catch {
    giveUp('the npm package node-api-headers is missing');
  }
  fs.mkdirSync(outDir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const args = ['-std=gnu11', '-O3', '-fno-trapping-math', '-fPIC', '-shared', '-Wall', '-Wextra', '-I', include, path.join(here, 'tda_native.c'), path.join(here, 'native_elementwise.c'), path.join(here, 'scoring.c'), path.join(here, 'external_weights.c'), path.join(here, 'cholesky.c'), '-o', tmp, '-lopenblas', '-lm', '-lpthread'];
  const r = spawnSync(cc, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    fs.rmSync(tmp, { force: true });
    const log = `${r.stderr || ''}${r.error ? r.error.message : ''}`;
    if (/cblas\.h|-lopenblas|openblas/i.test(log)) giveUp('OpenBLAS headers or library not found');
    giveUp(`compiler error: ${log.split('\n').find((l) => /error/.test(l)) || 'see `node native/build.js`'}`.trim());
  }
  fs.renameSync(tmp, out);
  // Load it once here, so that a library missing at run time is reported now.
  try {
    const addon = require(out);
    const info = addon.info();
    console.log(`tda-lab: native BLAS kernels built (${info.config.trim()}, ${info.library})`);
  } catch (e) {
    giveUp(`the built addon does not load: ${String(e && e.message).split('\n')[0]}`);
  }
}

main();
