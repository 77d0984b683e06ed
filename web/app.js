// app.js — retort's admin dashboard, in the browser: sign-in with an admin key (kept in
// sessionStorage, sent as "Authorization: Bearer"), the accounts table, linked groups, one
// account's detail (risk timeline as inline SVG, guard actions with their evidence, recent
// ledger rows) and the suspend / release buttons, all through the admin API (/admin/api/).
//
// Safety rule: every string that comes from the server (account names are chosen by users,
// reasons by admins, evidence by the guard) reaches the page as a text node or an attribute
// value set through the DOM, never as HTML. There is no innerHTML in this file.
// Not a framework and not a build step: plain ES2020, served as is from the binary.
'use strict';

(() => {
  const KEY_STORE = 'retort.admin_key';
  const AUTO_STORE = 'retort.auto_refresh';
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const LEVEL_RANK = { none: 0, released: 0.5, flag: 1, throttle: 2, verify: 2.5, suspend: 3 };

  const state = {
    key: null,
    overview: null,          // last GET guard/accounts
    sort: { col: 'risk', dir: 'desc' },
    rowLimit: 300,           // rows drawn before "show all" (thousands of rows make a slow page)
    timer: null,
    busy: false,
  };

  // ------------------------------------------------------------------ DOM helpers

  const $ = (sel) => document.querySelector(sel);

  function append(parent, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      parent.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return parent;
  }

  // h('a', {href: '#/', class: 'x', onclick: fn}, 'text', child...) — text is always text.
  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    return append(e, kids);
  }

  function svg(tag, attrs, ...kids) {
    const e = document.createElementNS(SVG_NS, tag);
    setAttrs(e, attrs);
    return append(e, kids);
  }

  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }

  function clear(e) {
    while (e.firstChild) e.removeChild(e.firstChild);
    return e;
  }

  // ------------------------------------------------------------------ formatting

  const nf = new Intl.NumberFormat('en-US');
  const fmtInt = (n) => (n === null || n === undefined ? '—' : nf.format(n));
  const fmtRisk = (r) => (r === null || r === undefined || !isFinite(r) ? '—' : Number(r).toFixed(2));

  function fmtTime(t) {
    if (t === null || t === undefined || !(t > 0)) return '—';
    const d = new Date(t * 1000);
    if (isNaN(d.getTime())) return '—';
    return d.toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
  }

  // An axis label: seconds when the span is short, the date when it is long.
  function fmtTick(t, span) {
    const d = new Date(t * 1000);
    if (isNaN(d.getTime())) return '';
    const iso = d.toISOString();
    if (span < 600) return iso.slice(11, 19);
    if (span < 2 * 86400) return iso.slice(5, 16).replace('T', ' ');
    return iso.slice(0, 10);
  }

  function badge(text, cls, title) {
    return h('span', { class: 'badge ' + (cls || ''), title: title || null }, text);
  }

  function levelClass(level) {
    return Object.prototype.hasOwnProperty.call(LEVEL_RANK, level) ? level : '';
  }

  function levelBadge(g) {
    const level = (g && g.level) || 'none';
    const shadow = g && g.last_action && g.last_action.mode === 'shadow' && level !== 'released';
    const label = shadow ? 'would ' + level : level;
    return [
      badge(label, levelClass(level), g && g.code ? 'code ' + g.code : null),
      shadow ? badge('shadow', 'shadow', 'the guard runs in shadow mode: recorded, not enforced') : null,
    ];
  }

  // Why an account is trusted: its guard tier (retort guard tier / the admin API), what the tier
  // changes, and the note and who set it.
  function trustBadge(g) {
    const t = g && g.trust;
    if (!t) return null;
    const what = t.exempt ? 'exempt: flagged at most, never throttled or suspended'
      : 'risk thresholds x' + t.risk_x + ', harvest budgets x' + t.budget_x;
    const why = [t.note || null, t.by ? 'set by ' + t.by : null, t.t ? fmtTime(t.t) : null].filter(Boolean).join(' · ');
    return badge('tier ' + t.tier, 'tag trust', 'tier ' + t.tier + ': ' + what + (why ? ' (' + why + ')' : ''));
  }

  function statusBadge(status) {
    return badge(status, status === 'suspended' ? 'suspended' : 'active');
  }

  function riskClass(r, policy) {
    if (r === null || r === undefined || !policy) return '';
    if (r >= policy.suspend_at) return 'suspend';
    if (r >= policy.throttle_at) return 'throttle';
    if (r >= policy.flag_at) return 'flag';
    return '';
  }

  function riskCell(g, policy) {
    const r = g ? g.risk : null;
    const max = Math.max(1.2 * ((policy && policy.suspend_at) || 1), r || 0);
    const fill = h('i', { class: riskClass(r, policy) });
    fill.style.width = (r === null || r === undefined ? 0 : Math.min(100, (100 * r) / max)) + '%';
    return h('span', { class: 'risk' },
      g && g.recent && g.recent.length > 1 ? sparkline(g.recent, max) : null,
      h('span', { class: 'mono' }, fmtRisk(r)),
      h('span', { class: 'bar' }, fill));
  }

  function sparkline(values, max) {
    const w = 56, hgt = 16;
    const n = values.length;
    const pts = values.map((v, i) => {
      const x = n === 1 ? w / 2 : (i * w) / (n - 1);
      const y = hgt - 1 - (Math.max(0, Math.min(v, max)) / max) * (hgt - 2);
      return (i ? 'L' : 'M') + x.toFixed(1) + ' ' + y.toFixed(1);
    });
    return svg('svg', { class: 'spark', width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}`, 'aria-hidden': 'true' },
      svg('path', { d: pts.join('') }));
  }

  function accountLink(id, name) {
    return h('a', { href: '#/account/' + encodeURIComponent(id), class: 'account-link', dataset: { id: String(id) } },
      name);
  }

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const headers = { Authorization: 'Bearer ' + state.key };
    const init = { method, headers, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let r;
    try {
      r = await fetch('/admin/api/' + path, init);
    } catch (e) {
      throw new ApiError('the server did not answer (' + e.message + ')', 0);
    }
    let j = null;
    try {
      j = await r.json();
    } catch (e) {
      j = null;
    }
    if (!r.ok) {
      const msg = (j && j.error && j.error.message) || 'HTTP ' + r.status;
      throw new ApiError(msg, r.status);
    }
    return j;
  }

  const accountRef = (id) => encodeURIComponent('#' + id);

  // ------------------------------------------------------------------ sign-in

  function showLogin(message) {
    stopTimer();
    state.key = null;
    state.overview = null;
    sessionStorage.removeItem(KEY_STORE);
    $('#app').hidden = true;
    $('#nav').hidden = true;
    $('#login').hidden = false;
    const err = $('#login-error');
    err.hidden = !message;
    err.textContent = message || '';
    $('#admin-key').value = '';
    $('#admin-key').focus();
  }

  async function signIn(key) {
    state.key = key;
    try {
      const c = await api('GET', 'config'); // cheap: proves the key is an admin's
      sessionStorage.setItem(KEY_STORE, key);
      $('#login').hidden = true;
      $('#app').hidden = false;
      $('#nav').hidden = false;
      showServerInfo(c);
      await route();
      startTimer();
    } catch (e) {
      const why = e.status === 401 ? 'That key was refused: ' + e.message
        : e.status === 403 ? 'That key is not an admin key: ' + e.message
        : 'Sign-in failed: ' + e.message;
      showLogin(why);
    }
  }

  // An API failure while signed in: a refused key signs out; anything else shows a banner.
  function handleError(e) {
    if (e instanceof ApiError && (e.status === 401 || (e.status === 403 && /admin/.test(e.message)))) {
      showLogin('Signed out: ' + e.message);
      return;
    }
    const b = $('#banner');
    b.textContent = e.message || String(e);
    b.hidden = false;
  }

  function clearBanner() {
    $('#banner').hidden = true;
    $('#banner').textContent = '';
  }

  function showServerInfo(c) {
    const cfg = (c && c.config) || {};
    const parts = [];
    if (cfg.model_name) parts.push('model ' + cfg.model_name);
    parts.push(cfg['guard.policy'] ? 'guard tables present' : 'no guard has run on this database');
    $('#server-info').textContent = parts.join(' · ');
  }

  // ------------------------------------------------------------------ routing

  function currentRoute() {
    const m = /^#\/account\/(\d+)$/.exec(location.hash);
    if (m) return { view: 'account', id: Number(m[1]) };
    const g = /^#\/group\/(\d+)$/.exec(location.hash);
    if (g) return { view: 'overview', group: Number(g[1]) };
    return { view: 'overview' };
  }

  async function route() {
    if (!state.key) return;
    const r = currentRoute();
    $('#view-overview').hidden = r.view !== 'overview';
    $('#view-account').hidden = r.view !== 'account';
    try {
      if (r.view === 'account') await loadAccount(r.id);
      else await loadOverview(r.group);
      clearBanner();
      $('#updated').textContent = 'updated ' + new Date().toISOString().slice(11, 19) + ' UTC';
    } catch (e) {
      handleError(e);
    }
  }

  function startTimer() {
    stopTimer();
    if (!$('#auto-refresh').checked) return;
    state.timer = setInterval(() => {
      if (!state.busy && currentRoute().view === 'overview' && !$('#suspend-dialog').open) route();
    }, 10000);
  }

  function stopTimer() {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
  }

  // ------------------------------------------------------------------ overview

  async function loadOverview(focusGroup) {
    state.overview = await api('GET', 'guard/accounts');
    renderOverview();
    if (focusGroup !== undefined) {
      const el = document.getElementById('group-' + focusGroup);
      if (el) {
        el.scrollIntoView({ block: 'center' });
        el.classList.add('focus');
      }
    }
  }

  function renderOverview() {
    const d = state.overview;
    renderSummary(d);
    renderAccounts(d);
    renderGroups(d);
  }

  function renderSummary(d) {
    const acc = d.accounts;
    const sum = (f) => acc.reduce((s, a) => s + (f(a) || 0), 0);
    const suspended = acc.filter((a) => a.status === 'suspended').length;
    // at risk but still serving: a suspended account is counted once, under 'suspended'
    const risky = acc.filter((a) => a.status !== 'suspended' && ['flag', 'throttle', 'verify', 'suspend'].includes(a.guard.level)).length;
    const tiles = [
      ['accounts', fmtInt(acc.length), ''],
      ['suspended', fmtInt(suspended), suspended ? 'bad' : ''],
      ['flagged or throttled', fmtInt(risky), risky ? 'warn' : ''],
      ['linked groups', fmtInt(d.groups.length), d.groups.length ? 'warn' : ''],
      ['requests (all time)', fmtInt(sum((a) => a.usage.requests)), ''],
      ['requests (24 h)', fmtInt(sum((a) => a.usage.requests_24h)), ''],
      ['tokens in / out', fmtInt(sum((a) => a.usage.prompt_tokens)) + ' / ' + fmtInt(sum((a) => a.usage.completion_tokens)), ''],
    ];
    append(clear($('#summary')), tiles.map(([k, v, cls]) =>
      h('div', { class: 'tile ' + cls }, h('div', { class: 'v' }, v), h('div', { class: 'k' }, k))));
  }

  function sortValue(a, col) {
    switch (col) {
      case 'name': return a.name.toLowerCase();
      case 'status': return a.status;
      case 'requests': return a.usage.requests;
      case 'tokens': return a.usage.prompt_tokens + a.usage.completion_tokens;
      case 'risk': return a.guard.risk === null ? -1 : a.guard.risk;
      case 'level': return LEVEL_RANK[a.guard.level] || 0;
      case 'group': return a.guard.group ? a.guard.group.id : Number.MAX_SAFE_INTEGER;
      case 'suspended_at': return a.status === 'suspended' ? a.status_changed_at || 0 : -1;
      default: return a.id;
    }
  }

  function matches(a, text, show) {
    if (show === 'suspended' && a.status !== 'suspended') return false;
    if (show === 'risky' && !['flag', 'throttle', 'verify', 'suspend'].includes(a.guard.level)) return false;
    if (show === 'grouped' && !a.guard.group) return false;
    if (!text) return true;
    const hay = [a.name, '#' + a.id, a.status, a.guard.level, a.guard.code, a.reason,
      a.label && a.label.strategy, a.label && a.label.persona].join(' ').toLowerCase();
    return hay.includes(text);
  }

  function renderAccounts(d) {
    const text = $('#filter').value.trim().toLowerCase();
    const show = $('#show').value;
    const { col, dir } = state.sort;
    const rows = d.accounts.filter((a) => matches(a, text, show));
    rows.sort((x, y) => {
      const a = sortValue(x, col), b = sortValue(y, col);
      const c = a < b ? -1 : a > b ? 1 : x.id - y.id;
      return dir === 'asc' ? c : -c;
    });
    for (const th of document.querySelectorAll('#accounts th[data-sort]')) {
      th.classList.toggle('sorted-asc', th.dataset.sort === col && dir === 'asc');
      th.classList.toggle('sorted-desc', th.dataset.sort === col && dir === 'desc');
    }
    const tbody = clear($('#accounts tbody'));
    for (const a of rows.slice(0, state.rowLimit)) tbody.append(accountRow(a, d));
    if (rows.length > state.rowLimit) {
      tbody.append(h('tr', { class: 'more' }, h('td', { colspan: 9 },
        h('button', { type: 'button', class: 'ghost small', onclick: () => { state.rowLimit = Infinity; renderAccounts(d); } },
          'Show all ' + fmtInt(rows.length) + ' accounts'),
        h('span', { class: 'muted' }, ' (the first ' + state.rowLimit + ' by the current order are shown; the filter searches all)'))));
    }
    $('#accounts-empty').hidden = rows.length > 0;
    if (!d.guard_tables && !$('#no-guard')) {
      $('#accounts').parentElement.before(h('p', { id: 'no-guard', class: 'notice' },
        'The guard has not run on this database yet (start the server with --guard): risk, levels and linked ',
        'groups appear here once it has.'));
    }
  }

  function accountRow(a, d) {
    const g = a.guard;
    const suspended = a.status === 'suspended';
    const nameCell = h('td', { class: 'name' }, accountLink(a.id, a.name),
      h('span', { class: 'sub' }, '#' + a.id,
        a.admin ? badge('admin', 'tag') : null, trustBadge(g),
        a.label ? badge(a.label.strategy, a.label.attack ? 'attack' : 'tag', 'simulator label: ' + a.label.persona) : null));
    const groupCell = g.group
      ? h('td', {}, h('a', { href: '#/group/' + g.group.id, class: 'group-link' }, 'group #' + g.group.id),
        h('span', { class: 'sub' }, g.group.size + ' accounts'))
      : h('td', { class: 'muted' }, '—');
    const reasonCell = suspended
      ? h('td', { class: 'reason' }, h('span', { class: 'text', title: a.reason }, a.reason || '(no reason given)'),
        h('span', { class: 'sub' }, fmtTime(a.status_changed_at)))
      : h('td', { class: 'reason muted' }, '—');
    return h('tr', { class: suspended ? 'is-suspended' : null, dataset: { id: String(a.id) } },
      nameCell,
      h('td', {}, statusBadge(a.status)),
      h('td', { class: 'num' }, fmtInt(a.usage.requests), h('span', { class: 'sub' }, fmtInt(a.usage.requests_24h) + ' in 24 h')),
      h('td', { class: 'num tokens' }, fmtInt(a.usage.prompt_tokens) + ' / ' + fmtInt(a.usage.completion_tokens),
        h('span', { class: 'sub' }, fmtInt(a.usage.tokens_24h) + ' in 24 h')),
      h('td', { class: 'num risk-cell' }, riskCell(g, d.policy)),
      h('td', {}, levelBadge(g)),
      groupCell,
      reasonCell,
      h('td', { class: 'row-buttons' }, actionButtons(a, false)));
  }

  function actionButtons(a, withGroup) {
    const out = [];
    const g = a.guard;
    const guarded = ['flag', 'throttle', 'verify', 'suspend'].includes(g.level);
    if (a.status === 'suspended' || guarded) {
      out.push(h('button', {
        type: 'button', class: 'small release', dataset: { action: 'release', id: String(a.id) },
        title: 'reactivate, undo a throttle, and let the guard start this account afresh',
        onclick: () => release(a, false),
      }, 'Release'));
    }
    if (withGroup && g.group) {
      out.push(h('button', {
        type: 'button', class: 'small release', dataset: { action: 'release-group', id: String(a.id) },
        onclick: () => release(a, true),
      }, 'Release group'));
    }
    if (a.status !== 'suspended') {
      out.push(h('button', {
        type: 'button', class: 'small danger', dataset: { action: 'suspend', id: String(a.id) },
        onclick: () => askSuspend([a]),
      }, 'Suspend'));
    }
    return h('span', { class: 'buttons' }, out);
  }

  function renderGroups(d) {
    const box = clear($('#groups'));
    if (!d.groups.length) {
      box.append(h('p', { class: 'muted empty' }, d.guard_tables ? 'No linked groups.' : 'No guard data yet.'));
      return;
    }
    const byId = new Map(d.accounts.map((a) => [a.id, a]));
    const grid = h('div', { class: 'groups' });
    for (const grp of d.groups) {
      const members = grp.members.map((m) => byId.get(m.id)).filter(Boolean);
      const active = members.filter((m) => m.status !== 'suspended');
      const held = members.filter((m) => m.status === 'suspended' || ['flag', 'throttle', 'verify', 'suspend'].includes(m.guard.level));
      grid.append(h('div', { class: 'group', id: 'group-' + grp.id, dataset: { group: String(grp.id) } },
        h('h3', {}, 'Group #' + grp.id, badge(grp.size + ' accounts', 'tag'),
          grp.suspended ? badge(grp.suspended + ' suspended', 'suspended') : null),
        h('div', { class: 'muted' }, 'max risk ', h('span', { class: 'mono' }, fmtRisk(grp.risk)),
          grp.code ? [' · ', h('span', { class: 'mono' }, grp.code)] : null,
          grp.reported_size > grp.size ? ' · the guard reports ' + grp.reported_size + ' members' : null),
        h('ul', {}, grp.members.map((m) => h('li', {},
          h('span', { class: 'grow' }, accountLink(m.id, m.name)),
          statusBadge(m.status), badge(m.level, levelClass(m.level)),
          h('span', { class: 'mono' }, fmtRisk(m.risk))))),
        h('div', { class: 'buttons' },
          held.length ? h('button', { type: 'button', class: 'small release', dataset: { action: 'release-group', group: String(grp.id) },
            onclick: () => release(held[0], true) }, 'Release group') : null,
          active.length ? h('button', { type: 'button', class: 'small danger', dataset: { action: 'suspend-group', group: String(grp.id) },
            onclick: () => askSuspend(active, 'linked group #' + grp.id) }, 'Suspend group') : null)));
    }
    box.append(grid);
  }

  // ------------------------------------------------------------------ actions

  let pendingSuspend = null;

  function askSuspend(accounts, what) {
    pendingSuspend = accounts;
    $('#suspend-name').textContent = what || accounts.map((a) => a.name).join(', ');
    $('#suspend-reason').value = what ? 'suspended by an admin (' + what + ')' : 'suspended by an admin';
    $('#suspend-dialog').showModal();
    $('#suspend-reason').select();
  }

  async function doSuspend() {
    const accounts = pendingSuspend || [];
    pendingSuspend = null;
    const reason = $('#suspend-reason').value.trim() || 'suspended by an admin';
    await withBusy(async () => {
      for (const a of accounts) await api('POST', 'accounts/' + accountRef(a.id) + '/suspend', { reason });
    });
  }

  async function release(a, group) {
    await withBusy(() => api('POST', 'guard/accounts/' + accountRef(a.id) + '/release', { group }));
  }

  async function withBusy(fn) {
    state.busy = true;
    const buttons = [...document.querySelectorAll('main button')];
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await fn();
      clearBanner();
    } catch (e) {
      handleError(e);
    } finally {
      state.busy = false;
      buttons.forEach((b) => { b.disabled = false; });
    }
    if (state.key) await route();
  }

  // ------------------------------------------------------------------ one account

  async function loadAccount(id) {
    const [d, ledger] = await Promise.all([
      api('GET', 'guard/accounts/' + accountRef(id) + '?points=240'),
      api('GET', 'usage?account=' + accountRef(id) + '&limit=25'),
    ]);
    renderDetail(d, ledger.rows || []);
  }

  function renderDetail(d, rows) {
    const a = d.account;
    const g = a.guard;
    const head = clear($('#detail-head'));
    head.append(h('div', { class: 'detail-title' },
      h('h1', { id: 'detail-name' }, a.name),
      h('span', { class: 'muted' }, '#' + a.id),
      statusBadge(a.status), levelBadge(g),
      a.admin ? badge('admin', 'tag') : null, trustBadge(g),
      a.label ? badge('simulator: ' + a.label.strategy, a.label.attack ? 'attack' : 'tag') : null,
      h('span', { class: 'buttons' }, actionButtons(a, true))));
    if (g && g.trust) {
      const t = g.trust;
      head.append(h('p', { class: 'muted', id: 'detail-trust' }, 'Trusted: tier ' + t.tier + ' (' +
        (t.exempt ? 'exempt: flagged at most, never throttled or suspended'
          : 'risk thresholds x' + t.risk_x + ', harvest budgets x' + t.budget_x) + ')' +
        (t.note ? ' — ' + t.note : '') + (t.by ? ', set by ' + t.by : '') + (t.t ? ' ' + fmtTime(t.t) : '') + '.'));
    }
    if (a.status === 'suspended') {
      head.append(h('p', { class: 'error reason-box', id: 'detail-reason' },
        'Suspended ' + fmtTime(a.status_changed_at) + ': ', a.reason || '(no reason given)'));
    }
    const lim = a.limits;
    const limText = [lim.rpm ? lim.rpm + ' rpm' : null, lim.tpm ? fmtInt(lim.tpm) + ' tpm' : null,
      lim.daily_tokens ? fmtInt(lim.daily_tokens) + ' tokens/day' : null].filter(Boolean).join(' · ') || 'unlimited';
    const members = d.group_members || [];
    const facts = [
      ['created', fmtTime(a.created_at)],
      ['limits', limText],
      ['requests', fmtInt(a.usage.requests) + ' (' + fmtInt(a.usage.ok_requests) + ' served, ' + fmtInt(a.usage.requests_24h) + ' in 24 h)'],
      ['tokens in / out', fmtInt(a.usage.prompt_tokens) + ' / ' + fmtInt(a.usage.completion_tokens)],
      ['last request', fmtTime(a.usage.last_request_at)],
      ['risk now', [h('span', { class: 'mono', id: 'detail-risk' }, fmtRisk(g.risk)),
        g.code ? [' ', h('span', { class: 'mono muted' }, g.code)] : null,
        g.risk_t ? h('span', { class: 'muted' }, ' at ' + fmtTime(g.risk_t)) : null]],
      ['linked group', g.group
        ? ['#' + g.group.id + ': ', members.map((m, i) => [i ? ', ' : '', accountLink(m.id, m.name)])]
        : 'none'],
    ];
    head.append(h('div', { class: 'facts' }, facts.map(([k, v]) =>
      h('div', {}, h('span', { class: 'k' }, k), h('span', { class: 'v' }, v)))));

    renderTimeline(d);
    renderSignals(d.signals);
    renderActions(d, a);
    renderLedger(rows);
  }

  function renderTimeline(d) {
    const box = clear($('#timeline'));
    const pts = d.timeline || [];
    $('#timeline-note').textContent = d.timeline_rows > pts.length
      ? pts.length + ' of ' + fmtInt(d.timeline_rows) + ' scores (highest per interval)'
      : pts.length ? fmtInt(pts.length) + ' scores' : '';
    if (!pts.length) {
      box.append(h('p', { class: 'muted empty' }, 'No risk scores recorded for this account yet (the guard scores an account as its requests arrive).'));
      return;
    }
    const policy = d.policy;
    const W = 640, H = 230, L = 40, R = 92, T = 14, B = 30;
    let t0 = pts[0].t, t1 = pts[pts.length - 1].t;
    const span0 = Math.max(t1 - t0, 60);
    const acts = (d.actions || []).filter((x) => x.t >= t0 - span0 && x.t <= t1 + span0);
    for (const x of acts) { t0 = Math.min(t0, x.t); t1 = Math.max(t1, x.t); }
    if (t1 <= t0) { t0 -= 30; t1 += 30; }
    const maxRisk = Math.max(1.2 * policy.suspend_at, ...pts.map((p) => p.risk)) * 1.05;
    const X = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const Y = (r) => T + (1 - Math.max(0, r) / maxRisk) * (H - T - B);
    const root = svg('svg', { class: 'timeline', viewBox: `0 0 ${W} ${H}`, role: 'img', id: 'risk-timeline',
      'aria-label': 'risk over time' });
    // axes and grid
    for (let v = 0; v <= maxRisk; v += maxRisk > 2.5 ? 1 : 0.5) {
      root.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: Y(v), y2: Y(v) }),
        svg('text', { x: L - 6, y: Y(v) + 4, 'text-anchor': 'end' }, v.toFixed(1)));
    }
    root.append(svg('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    for (const [name, v] of [['flag', policy.flag_at], ['throttle', policy.throttle_at], ['suspend', policy.suspend_at]]) {
      if (!(v > 0) || v > maxRisk) continue;
      root.append(svg('line', { class: 'th ' + name, x1: L, x2: W - R, y1: Y(v), y2: Y(v) }),
        svg('text', { x: W - R + 4, y: Y(v) + 4 }, name + ' ' + v.toFixed(2)));
    }
    const ticks = [t0, (t0 + t1) / 2, t1];
    ticks.forEach((t, i) => root.append(svg('text', {
      x: X(t), y: H - B + 16, 'text-anchor': i === 0 ? 'start' : i === 2 ? 'end' : 'middle',
    }, fmtTick(t, t1 - t0))));
    // the risk line
    const line = pts.map((p, i) => (i ? 'L' : 'M') + X(p.t).toFixed(1) + ' ' + Y(p.risk).toFixed(1)).join('');
    const area = line + `L${X(pts[pts.length - 1].t).toFixed(1)} ${Y(0)}L${X(pts[0].t).toFixed(1)} ${Y(0)}Z`;
    root.append(svg('path', { class: 'area', d: area }), svg('path', { class: 'line', d: line }));
    if (pts.length <= 60) {
      for (const p of pts) {
        root.append(svg('circle', { class: 'pt', cx: X(p.t), cy: Y(p.risk), r: 2.5 },
          svg('title', {}, fmtTime(p.t) + ': risk ' + fmtRisk(p.risk) + ' (' + p.level + ')')));
      }
    }
    // actions
    for (const x of acts) {
      const cls = 'mark ' + (['flag', 'throttle', 'verify', 'suspend', 'release'].includes(x.action) ? x.action : '');
      const xx = X(x.t);
      root.append(svg('g', { class: 'action-mark', dataset: { action: x.action } },
        svg('title', {}, x.action + ' (' + x.mode + ') at ' + fmtTime(x.t) + ', risk ' + fmtRisk(x.risk)),
        svg('line', { class: cls, x1: xx, x2: xx, y1: T, y2: H - B, 'stroke-dasharray': '2 3' }),
        svg('path', { class: cls, d: `M${xx - 5} ${T - 2}L${xx + 5} ${T - 2}L${xx} ${T + 6}Z` })));
    }
    box.append(root);
  }

  function renderSignals(signals) {
    const box = clear($('#signals'));
    const entries = signals && typeof signals === 'object' ? Object.entries(signals) : [];
    if (!entries.length) {
      box.append(h('p', { class: 'muted empty' }, 'No signals yet.'));
      return;
    }
    entries.sort((x, y) => (Number(y[1][1]) || 0) - (Number(x[1][1]) || 0));
    box.append(h('table', { class: 'grid small', id: 'signals-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'signal'), h('th', { class: 'num' }, 'value'), h('th', {}, 'score'))),
      h('tbody', {}, entries.map(([name, v]) => {
        const value = Array.isArray(v) ? v[0] : null, score = Array.isArray(v) ? Number(v[1]) || 0 : 0;
        const fill = h('i', { class: score >= 1 ? 'hot' : '' });
        fill.style.width = Math.min(100, score * 100) + '%';
        return h('tr', {}, h('td', { class: 'mono' }, name),
          h('td', { class: 'num mono' }, typeof value === 'number' ? value.toPrecision(4) : '—'),
          h('td', {}, h('span', { class: 'sigbar' }, fill), ' ', h('span', { class: 'mono' }, score.toFixed(2))));
      }))));
  }

  function nameOf(id) {
    const a = state.overview && state.overview.accounts.find((x) => x.id === id);
    return a ? a.name : '#' + id;
  }

  function assessmentTable(as) {
    const sig = as && as.signals;
    if (!sig || typeof sig !== 'object') return null;
    const num = (x) => (typeof x === 'number' ? (Math.abs(x) >= 1000 ? x.toExponential(2) : x.toPrecision(3)) : '—');
    const rows = Object.entries(sig).sort((x, y) => (y[1].contribution || 0) - (x[1].contribution || 0));
    return h('table', { class: 'grid small' },
      h('thead', {}, h('tr', {}, ['signal', 'family', 'value', 'benign', 'attack', 'score', 'contribution']
        .map((c, i) => h('th', { class: i >= 2 ? 'num' : null }, c)))),
      h('tbody', {}, rows.map(([name, s]) => h('tr', {},
        h('td', { class: 'mono' }, name), h('td', {}, String(s.family || '')),
        h('td', { class: 'num mono' }, num(s.value)), h('td', { class: 'num mono' }, num(s.benign)),
        h('td', { class: 'num mono' }, num(s.attack)), h('td', { class: 'num mono' }, num(s.score)),
        h('td', { class: 'num mono' }, num(s.contribution))))));
  }

  function evidenceView(ev, accountId) {
    if (!ev || typeof ev !== 'object' || !Object.keys(ev).length) {
      return h('p', { class: 'muted' }, 'No evidence stored with this action.');
    }
    const parts = [];
    if (typeof ev.account === 'number' && ev.account !== accountId) {
      parts.push(h('p', {}, 'Decided on the evidence of linked account ', accountLink(ev.account, nameOf(ev.account)), '.'));
    }
    const as = ev.account_assessment;
    if (as) {
      parts.push(h('p', {}, 'Account alone: risk ', h('span', { class: 'mono' }, fmtRisk(as.risk)), ' over ',
        fmtInt(as.requests), ' requests (', fmtInt(as.served), ' served), ', fmtTime(as.from), ' – ', fmtTime(as.to), '.'));
      parts.push(assessmentTable(as));
    }
    const grp = ev.group;
    if (grp && Array.isArray(grp.members) && grp.members.length > 1) {
      parts.push(h('p', {}, 'Linked group #' + grp.id + ' of ' + grp.members.length + ': ',
        grp.members.map((m, i) => [i ? ', ' : '', accountLink(m, nameOf(m))]),
        grp.assessment ? ['; pooled risk ', h('span', { class: 'mono' }, fmtRisk(grp.assessment.risk))] : null));
      if (grp.assessment) parts.push(assessmentTable(grp.assessment));
    }
    if (Array.isArray(ev.linked) && ev.linked.length) {
      parts.push(h('p', {}, 'Pair evidence with other accounts:'),
        h('table', { class: 'grid small' },
          h('thead', {}, h('tr', {}, ['account', 'linked', 'score', 'kinds', 'ip', 'sign-up burst', 'template', 'timing']
            .map((c) => h('th', {}, c)))),
          h('tbody', {}, ev.linked.map((l) => h('tr', {},
            h('td', {}, accountLink(l.account, nameOf(l.account))), h('td', {}, l.linked ? 'yes' : 'no'),
            h('td', { class: 'mono' }, fmtRisk(l.score)), h('td', { class: 'mono' }, String(l.kinds ?? '')),
            h('td', { class: 'mono' }, fmtRisk(l.ip)), h('td', { class: 'mono' }, fmtRisk(l.burst)),
            h('td', { class: 'mono' }, fmtRisk(l.template)), h('td', { class: 'mono' }, fmtRisk(l.timing)))))));
    }
    const pop = ev.population;
    const u = (x) => fmtInt(typeof x === 'number' ? Math.round(x) : x); /* value units */
    if (pop && pop.member && pop.flag > 0) {
      parts.push(h('p', {}, 'Population budget: the newly active low-volume accounts were served ',
        h('span', { class: 'mono' }, u(pop.value)), ' value units (flag ', u(pop.flag), ', throttle ',
        u(pop.throttle), ', verify ', u(pop.verify), ', suspend ', u(pop.suspend), '); this member ',
        h('span', { class: 'mono' }, u(pop.member_value)), ' (acted on above ', u(pop.member_low),
        ', suspended above ', u(pop.member_high), '): ', String(pop.level || 'none'), '.'));
    }
    parts.push(h('details', {}, h('summary', {}, 'Raw evidence JSON'),
      h('pre', { class: 'evidence-json' }, JSON.stringify(ev, null, 2))));
    return parts;
  }

  function renderActions(d, a) {
    const box = clear($('#actions'));
    const acts = (d.actions || []).slice().reverse();
    if (!acts.length) {
      box.append(h('p', { class: 'muted empty' }, 'The guard has taken no action on this account.'));
      return;
    }
    for (const x of acts) {
      box.append(h('div', { class: 'action', dataset: { action: x.action, id: String(x.id) } },
        h('div', { class: 'head' },
          badge(x.action, levelClass(x.action === 'release' ? 'released' : x.action)),
          badge(x.mode, x.mode === 'shadow' ? 'shadow' : 'tag'),
          x.code ? h('span', { class: 'mono' }, x.code) : null,
          x.action !== 'release' ? h('span', {}, 'risk ', h('span', { class: 'mono' }, fmtRisk(x.risk))) : null,
          x.previous_rpm !== undefined ? h('span', { class: 'muted' }, 'rpm before: ' + (x.previous_rpm || 'unlimited')) : null,
          h('span', { class: 'when muted' }, '#' + x.id + ' · ' + fmtTime(x.t))),
        x.reason ? h('p', { class: 'reason' }, x.reason) : null,
        x.action !== 'release'
          ? h('details', { class: 'evidence' }, h('summary', {}, 'Evidence'), evidenceView(x.evidence, a.id))
          : null));
    }
  }

  function renderLedger(rows) {
    const box = clear($('#ledger'));
    if (!rows.length) {
      box.append(h('p', { class: 'muted empty' }, 'No requests in the ledger.'));
      return;
    }
    const cols = ['time', 'endpoint', 'status', 'in', 'out', 'max_tokens', 'logprobs', 'latency', 'finish', 'client'];
    box.append(h('table', { class: 'grid small', id: 'ledger-table' },
      h('thead', {}, h('tr', {}, cols.map((c, i) => h('th', { class: [2, 3, 4, 5, 7].includes(i) ? 'num' : null }, c)))),
      h('tbody', {}, rows.map((r) => h('tr', {},
        h('td', {}, fmtTime(r.t)),
        h('td', { class: 'mono' }, String(r.endpoint || '')),
        h('td', { class: 'num mono status-code ' + (r.status === 200 ? 'ok' : 'bad'), title: r.error || null }, String(r.status)),
        h('td', { class: 'num' }, fmtInt(r.prompt_tokens)),
        h('td', { class: 'num' }, fmtInt(r.completion_tokens)),
        h('td', { class: 'num' }, fmtInt(r.max_tokens)),
        h('td', {}, r.logprobs ? 'yes' + (r.top_logprobs ? ' (top ' + r.top_logprobs + ')' : '') : 'no'),
        h('td', { class: 'num' }, typeof r.latency_ms === 'number' ? r.latency_ms.toFixed(0) + ' ms' : '—'),
        h('td', {}, String(r.finish_reason || '')),
        h('td', { class: 'mono' }, String(r.client || '')))))));
  }

  // ------------------------------------------------------------------ wiring

  function init() {
    $('#login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const key = $('#admin-key').value.trim();
      if (key) signIn(key);
    });
    $('#logout').addEventListener('click', () => showLogin(null));
    $('#refresh').addEventListener('click', () => route());
    $('#auto-refresh').checked = sessionStorage.getItem(AUTO_STORE) === '1';
    $('#auto-refresh').addEventListener('change', (ev) => {
      sessionStorage.setItem(AUTO_STORE, ev.target.checked ? '1' : '0');
      startTimer();
    });
    $('#filter').addEventListener('input', () => state.overview && renderAccounts(state.overview));
    $('#show').addEventListener('change', () => state.overview && renderAccounts(state.overview));
    for (const th of document.querySelectorAll('#accounts th[data-sort]')) {
      const sortBy = () => {
        const col = th.dataset.sort;
        state.sort = state.sort.col === col
          ? { col, dir: state.sort.dir === 'asc' ? 'desc' : 'asc' }
          : { col, dir: ['name', 'status', 'group'].includes(col) ? 'asc' : 'desc' };
        if (state.overview) renderAccounts(state.overview);
      };
      th.addEventListener('click', sortBy);
      th.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          sortBy();
        }
      });
    }
    $('#suspend-cancel').addEventListener('click', () => {
      pendingSuspend = null;
      $('#suspend-dialog').close();
    });
    $('#suspend-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      $('#suspend-dialog').close();
      doSuspend();
    });
    window.addEventListener('hashchange', () => route());
    const saved = sessionStorage.getItem(KEY_STORE);
    if (saved) signIn(saved);
    else showLogin(null);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
