/**
 * A page in Debian's headless Chromium driven by playwright-core (never a downloaded
 * browser), with every console error and uncaught exception collected.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BrowserContext, chromium, Page } from 'playwright-core';
import { chromiumPath } from './chromium';

export interface OpenedPage {
  page: Page;
  /** Console errors and page exceptions seen so far. */
  errors: string[];
  /** Requests to anything but the file itself (the page must work offline). */
  requests: string[];
  close(): Promise<void>;
}

export async function openPage(file: string, viewport = { width: 1400, height: 1000 }): Promise<OpenedPage> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-playwright-'));
  let context: BrowserContext | undefined;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath(),
      headless: true,
      viewport,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const errors: string[] = [];
    const requests: string[] = [];
    const url = `file://${path.resolve(file)}`;
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('request', (r) => {
      if (r.url() !== url && !r.url().startsWith('data:')) requests.push(r.url());
    });
    await page.goto(url, { waitUntil: 'load', timeout: 120000 });
    const ctx = context;
    return {
      page,
      errors,
      requests,
      close: async () => {
        await ctx.close();
        fs.rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await context?.close();
    fs.rmSync(profile, { recursive: true, force: true });
    throw e;
  }
}
