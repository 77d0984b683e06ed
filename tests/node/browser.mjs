// browser.mjs — what the browser tests share (dashboard.mjs, report_figure.mjs): Debian's
// headless Chromium through playwright-core (never a downloaded browser; $CHROMIUM or
// /usr/bin/chromium), a page that aborts and lists every request outside what the test allows
// and collects script errors and dialogs, and the check/exit bookkeeping.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

let failures = 0;
export function check(cond, what) {
  if (cond) return;
  failures++;
  console.error('FAIL ' + what);
}

// Run fn(page) in a fresh browser profile. allowed(url) says which requests may load; after fn
// the page must have made no other request, raised no script error and opened no dialog. An
// exception from fn is a failure. The browser and its profile are removed afterwards.
export async function withPage({ allowed, viewport }, fn) {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'retort-chromium-'));
  const ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const foreign = [], pageErrors = [], dialogs = [];
  try {
    const page = await ctx.newPage();
    page.setDefaultTimeout(15000);
    await page.route('**/*', (route) => {
      const u = route.request().url();
      if (allowed(u)) return route.continue();
      foreign.push(u);
      return route.abort();
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      d.dismiss().catch(() => {});
    });
    await fn(page);
    check(pageErrors.length === 0, 'no script errors: ' + pageErrors.join('; '));
    check(dialogs.length === 0, 'no dialog opened: ' + dialogs.join('; '));
    check(foreign.length === 0, 'no request outside what the page may load: ' + foreign.join(' '));
  } catch (e) {
    failures++;
    console.error('FAIL ' + (e && e.stack ? e.stack : e));
  } finally {
    await ctx.close();
    fs.rmSync(userDir, { recursive: true, force: true });
  }
}

// Exit 1 with the count of failures, or print okLine and return.
export function finish(name, okLine) {
  if (failures) {
    console.error(`${name}: ${failures} failure(s)`);
    process.exit(1);
  }
  console.log(okLine());
}
