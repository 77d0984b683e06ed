// report_figure.mjs — the evidence report's figures in a real browser (Debian's headless Chromium
// through playwright-core). Run by tests/ref_report_figure.sh: REPORT=/path/report.html
// CAPTION='...' node tests/node/report_figure.mjs. Checks: two figures; each <img> decodes at
// the size its SVG declares (760x460 for eval-plot's chart, 120x30 for the hostile one); no
// script ran (window.__xss unset, no dialog, no page error); no request other than the file
// itself and data: URLs; the HTML caption is shown as text. Exits 1 naming what failed.
import { pathToFileURL } from 'node:url';
import { check, finish, withPage } from './browser.mjs';

const REPORT = process.env.REPORT;
const CAPTION = process.env.CAPTION;
if (!REPORT || !CAPTION) {
  console.error('report_figure.mjs: set REPORT and CAPTION');
  process.exit(2);
}
const url = pathToFileURL(REPORT).href;
await withPage({ allowed: (u) => u === url || u.startsWith('data:') }, async (page) => {
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
});
finish('report_figure.mjs', () => 'report_figure.mjs: ok — 2 figures drawn from data: URLs, no script ran, nothing fetched');
