// dashboard.mjs — retort's admin dashboard in a real browser (Debian's headless Chromium driven
// by playwright-core; never a downloaded browser). Run by tests/ref_dashboard.sh against a
// `retort serve` whose guard has suspended an account:
//   RETORT_URL=http://127.0.0.1:PORT RETORT_ADMIN_KEY=rt-... RETORT_EVIL_NAME='<img ...>'
//   RETORT_SCREENSHOT=build/tests/dashboard.png node tests/node/dashboard.mjs
// Checks: a wrong key is refused on the sign-in form; the admin key signs in; the table shows the
// guard-suspended account with its reason, risk and level; sorting and filtering; an account name and a suspension
// reason made of HTML render as text (no element, no script, no dialog); the linked groups and
// the account's detail (risk timeline, actions with evidence, ledger rows) are drawn; the release
// button reactivates the account (checked through the API, not the page); the suspend button
// suspends another with the reason typed; sign-out forgets the key; the page asks for nothing
// outside the server. Prints what failed and exits 1, or prints a summary and exits 0.
import { check, finish, withPage } from './browser.mjs';

const URL_BASE = process.env.RETORT_URL;
const KEY = process.env.RETORT_ADMIN_KEY;
const EVIL = process.env.RETORT_EVIL_NAME;
const SHOT = process.env.RETORT_SCREENSHOT || '';
if (!URL_BASE || !KEY || !EVIL) {
  console.error('dashboard.mjs: set RETORT_URL, RETORT_ADMIN_KEY and RETORT_EVIL_NAME');
  process.exit(2);
}
const EVIL_REASON = '<img src=x onerror="window.__xss=2"><script>window.__xss=3</script>';

async function api(method, p, body) {
  const r = await fetch(URL_BASE + '/admin/api/' + p, {
    method,
    headers: { Authorization: 'Bearer ' + KEY, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const j = await r.json();
  if (!r.ok) throw new Error(`${method} ${p}: HTTP ${r.status}: ${JSON.stringify(j)}`);
  return j;
}
const ref = (id) => encodeURIComponent('#' + id);

// ------------------------------------------------------------------ the state to look for

const before = await api('GET', 'guard/accounts');
const suspect = before.accounts.find((a) => a.status === 'suspended' && a.guard.last_action &&
  a.guard.last_action.action === 'suspend' && a.guard.last_action.mode === 'enforce');
if (!suspect) {
  console.error('dashboard.mjs: no account was suspended by the guard; accounts: ' +
    before.accounts.map((a) => `${a.name}:${a.status}:${a.guard.level}`).join(' '));
  process.exit(1);
}
const evil = before.accounts.find((a) => a.name === EVIL);
if (!evil) {
  console.error('dashboard.mjs: the account with the hostile name is not in the database');
  process.exit(1);
}
await api('POST', 'accounts/' + ref(evil.id) + '/suspend', { reason: EVIL_REASON });
const bystander = before.accounts.find((a) => a.status === 'active' && !a.admin && a.id !== evil.id &&
  a.guard.level === 'none');

// ------------------------------------------------------------------ the browser

const t0 = Date.now();
const origin = new URL(URL_BASE).origin;
await withPage({ viewport: { width: 1400, height: 900 },
  allowed: (u) => u.startsWith(origin + '/') || u.startsWith('data:') }, async (page) => {
  // sign-in: a wrong key first
  await page.goto(URL_BASE + '/admin');
  await page.waitForSelector('#login-form');
  await page.fill('#admin-key', 'rt-000000000000-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
  await page.click('#login-button');
  await page.waitForSelector('#login-error:not([hidden])');
  check(/refused/.test(await page.textContent('#login-error')), 'a wrong key shows "refused"');
  check(await page.isHidden('#app'), 'a wrong key shows no data');
  check(await page.evaluate(() => sessionStorage.getItem('retort.admin_key')) === null, 'a wrong key is not kept');

  await page.fill('#admin-key', KEY);
  await page.click('#login-button');
  await page.waitForSelector(`#accounts tbody tr[data-id="${suspect.id}"]`);
  check(await page.evaluate(() => sessionStorage.getItem('retort.admin_key')) === KEY, 'the key is kept in sessionStorage');

  // the tiles count each account once: 'flagged or throttled' is active accounts at risk only
  {
    const now = await api('GET', 'guard/accounts');
    const tiles = {};
    for (const t of await page.locator('#summary .tile').all())
      tiles[await t.locator('.k').textContent()] = Number((await t.locator('.v').textContent()).replace(/[^0-9]/g, ''));
    const susp = now.accounts.filter((a) => a.status === 'suspended').length;
    const risky = now.accounts.filter((a) => a.status !== 'suspended' && ['flag', 'throttle', 'suspend'].includes(a.guard.level)).length;
    check(tiles['suspended'] === susp, `the suspended tile says ${tiles['suspended']}, the API lists ${susp}`);
    check(tiles['flagged or throttled'] === risky,
      `the flagged-or-throttled tile says ${tiles['flagged or throttled']}, the API lists ${risky} active accounts at risk`);
  }

  // the guard-suspended account in the table
  const row = page.locator(`#accounts tbody tr[data-id="${suspect.id}"]`);
  const rowText = await row.innerText();
  check(rowText.includes(suspect.name), 'the suspended account is listed by name');
  check(/suspended/.test(rowText), 'its status is shown as suspended');
  check(rowText.includes('guard: suspected model extraction'), 'its suspension reason is shown');
  check(rowText.includes(Number(suspect.guard.risk).toFixed(2)), `its risk ${Number(suspect.guard.risk).toFixed(2)} is shown`);
  check((await row.locator('.badge.suspend').count()) === 1, 'its level badge says suspend');

  // hostile strings are text
  const evilRow = page.locator(`#accounts tbody tr[data-id="${evil.id}"]`);
  check((await evilRow.locator('a.account-link').textContent()) === EVIL, 'the hostile name renders as its own text');
  check((await evilRow.locator('td.reason .text').textContent()) === EVIL_REASON, 'the hostile reason renders as its own text');
  check((await page.locator('#accounts img, #accounts script, #accounts b').count()) === 0, 'no element came out of a name or reason');
  check(await page.evaluate(() => window.__xss === undefined), 'no script from a name or reason ran');

  // sorting and filtering
  await page.click('#accounts th[data-sort="name"]');
  const names = await page.locator('#accounts tbody tr a.account-link').allTextContents();
  const sorted = [...names].sort((x, y) => (x.toLowerCase() < y.toLowerCase() ? -1 : x.toLowerCase() > y.toLowerCase() ? 1 : 0));
  check(names.length === before.accounts.length && names.every((n, i) => n === sorted[i]), 'the name header sorts by name');
  await page.fill('#filter', suspect.name);
  check((await page.locator('#accounts tbody tr').count()) === 1, 'the filter keeps the one matching account');
  await page.fill('#filter', '');
  await page.click('#accounts th[data-sort="risk"]');

  // linked groups (the simulated sybil ring)
  if (before.groups.length) {
    check((await page.locator('#groups .group').count()) === before.groups.length, 'every linked group is drawn');
  }
  if (SHOT) await page.screenshot({ path: SHOT, fullPage: true });

  // the account's detail
  await row.locator('a.account-link').click();
  await page.waitForSelector('#risk-timeline path.line');
  check((await page.textContent('#detail-name')) === suspect.name, 'the detail shows the account');
  const d = (await page.getAttribute('#risk-timeline path.line', 'd')) || '';
  check((d.match(/L/g) || []).length >= 1, 'the risk timeline has a line');
  check((await page.locator('#risk-timeline .action-mark[data-action="suspend"]').count()) >= 1, 'the suspension is marked on the timeline');
  const act = page.locator('#actions .action[data-action="suspend"]').first();
  await act.locator('details.evidence > summary').click();
  const evText = await act.innerText();
  check(evText.includes('Account alone') && /logprobs|template|saturation/.test(evText), 'the suspension shows its evidence');
  check((await page.locator('#ledger-table tbody tr').count()) > 0, 'recent ledger rows are listed');
  check((await page.locator('#signals-table tbody tr').count()) > 0, 'the latest signals are listed');
  if (SHOT) await page.screenshot({ path: SHOT.replace(/\.png$/, '-account.png'), fullPage: true });

  // release: the page calls the API and redraws; the API (not the page) says whether it worked
  await page.click('#detail-head button[data-action="release"]');
  await page.waitForSelector('#detail-head .badge.active');
  const after = await api('GET', 'accounts/' + ref(suspect.id));
  check(after.account.status === 'active', 'after release the API says the account is active');
  const gv = await api('GET', 'guard/accounts/' + ref(suspect.id));
  const last = gv.actions[gv.actions.length - 1];
  check(last && last.action === 'release' && last.mode === 'operator', 'the release is recorded as an operator action');
  check(gv.account.guard.level === 'released', 'the guard view says released');

  // suspend another account from the table, with a typed reason
  if (bystander) {
    await page.click('a.back');
    const brow = page.locator(`#accounts tbody tr[data-id="${bystander.id}"]`);
    await brow.locator('button[data-action="suspend"]').click();
    await page.waitForSelector('#suspend-dialog[open]');
    await page.fill('#suspend-reason', 'reviewed by the browser test');
    await page.click('#suspend-confirm');
    await page.waitForSelector(`#accounts tbody tr[data-id="${bystander.id}"].is-suspended`);
    const b = await api('GET', 'accounts/' + ref(bystander.id));
    check(b.account.status === 'suspended' && b.account.reason === 'reviewed by the browser test',
      'the suspend button suspends with the typed reason');
  }

  // sign out
  await page.click('#logout');
  await page.waitForSelector('#login:not([hidden])');
  check(await page.evaluate(() => sessionStorage.getItem('retort.admin_key')) === null, 'sign-out forgets the key');
});
finish('dashboard.mjs', () => `dashboard.mjs: ok — ${suspect.name} (risk ${Number(suspect.guard.risk).toFixed(2)}) seen ` +
  `suspended, released through the page, hostile strings inert, ${((Date.now() - t0) / 1000).toFixed(1)}s in the browser`);
