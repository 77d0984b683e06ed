// report_figure.mjs — the evidence report's figures in a real browser (Debian's headless Chromium
// through playwright-core). Run by tests/ref_report_figure.sh: REPORT=/path/report.html
// CAPTION='...' node tests/node/report_figure.mjs. Checks: two figures; each <img> decodes at
// the size its SVG declares (760x460 for eval-plot's chart, 120x30 for the hostile one); no
// script ran (window.__xss unset, no dialog, no page error); no request other than the file
// itself and data: URLs; the HTML caption is shown as text. Exits 1 naming what failed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const REPORT = process.env.REPORT;
const CAPTION = process.env.CAPTION;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!REPORT || !CAPTION) {
  console.error('report_figure.mjs: set REPORT and CAPTION');
  process.exit(2);
}
let failures = 0;
function check(cond, what) {
  if (cond) return;
  failures++;
  console.error('FAIL ' + what);
}
const url = pathToFileURL(REPORT).href;
const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'retort-chromium-'));
const ctx = await chromium.launchPersistentContext(userDir, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const foreign = [], pageErrors = [], dialogs = [];
try {
  const page = await ctx.newPage();
  page.setDefaultTimeout(15000);
  await page.route('**/*', (route) => {
    const u = route.request().url();
    if (u === url || u.startsWith('data:')) return route.continue();
    foreign.push(u);
    return route.abort();
  });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  await page.goto(url);
  await page.waitForFunction(() => [...document.querySelectorAll('figure img')].every((i) => i.complete));
  await page.waitForTimeout(300); // an onload handler or a script would have run by now
  const figs = await page.$$eval('figure', (fs) => fs.map((f) => {
    const i = f.querySelector('img');
    return { alt: i.alt, w: i.naturalWidth, h: i.naturalHeight, caption: f.querySelector('figcaption').textContent };
  }));
  check(figs.length === 2, `two figures (got ${figs.length})`);
  const chart = figs.find((f) => f.alt === 'trade-off'), hostile = figs.find((f) => f.alt === 'hostile');
  check(chart && chart.w === 760 && chart.h === 460, 'the eval-plot chart decodes at 760x460: ' + JSON.stringify(chart));
  check(hostile && hostile.w === 120 && hostile.h === 30, 'the hostile SVG decodes at 120x30: ' + JSON.stringify(hostile));
  check(chart && chart.caption.includes(CAPTION), 'the HTML caption is shown as text: ' + (chart && chart.caption));
  check(chart && /SHA-256 [0-9a-f]{64}/.test(chart.caption), 'the caption gives the SHA-256');
  check(await page.evaluate(() => window.__xss === undefined), 'no script ran (window.__xss is set)');
  check(await page.$$eval('figcaption img', (x) => x.length) === 0, 'no element made from the caption');
  check(pageErrors.length === 0, 'no page errors: ' + pageErrors.join('; '));
  check(dialogs.length === 0, 'no dialogs: ' + dialogs.join('; '));
  check(foreign.length === 0, 'nothing fetched beyond the file: ' + foreign.join(' '));
} catch (e) {
  failures++;
  console.error('FAIL ' + (e && e.stack ? e.stack : e));
} finally {
  await ctx.close();
  fs.rmSync(userDir, { recursive: true, force: true });
}
if (failures) {
  console.error(`report_figure.mjs: ${failures} failure(s)`);
  process.exit(1);
}
console.log('report_figure.mjs: ok — 2 figures drawn from data: URLs, no script ran, nothing fetched');
