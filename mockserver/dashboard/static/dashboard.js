/* rokt-mock dashboard: plain JavaScript, no build step, no dependency, nothing from a CDN.
 *
 * Everything shown comes from the admin API (whose journal already redacts credentials). Text
 * reaches the page through textContent only, never innerHTML, so a journaled body cannot turn
 * into markup. The page polls; each view asks only for what it shows.
 */
'use strict';

(() => {
  const API = '/__admin';
  const TOKEN_KEY = 'rokt-mock-admin-token';
  const TOKEN_HEADER = 'X-Rokt-Mock-Admin-Token';
  const NS_RE = /^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$/;
  const SVG = 'http://www.w3.org/2000/svg';
  const TIMELINE_LIMIT = 300;
  const PAGE = 50;
  const MAX_PRETTY = 400000; // bytes of body rendered as a navigable tree; larger ones as text
  const REASONS = {
    0: 'no answer', 200: 'OK', 201: 'Created', 400: 'Bad Request', 401: 'Unauthorized',
    403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout',
    409: 'Conflict', 413: 'Payload Too Large', 415: 'Unsupported Media Type',
    429: 'Too Many Requests', 500: 'Internal Server Error', 502: 'Bad Gateway',
    503: 'Service Unavailable', 504: 'Gateway Timeout',
  };
  const LANES = [
    { key: 'ok', label: '2xx' },
    { key: 'client', label: '4xx' },
    { key: 'server', label: '5xx' },
    { key: 'none', label: 'no answer' },
  ];

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

  const query = new URLSearchParams(location.search);
  const pathNs = (location.pathname.match(/\/__admin\/ns\/([^/]+)\/?$/) || [])[1];
  const firstNs = query.get('namespace') || (pathNs ? decodeURIComponent(pathNs) : 'default');

  const state = {
    ns: NS_RE.test(firstNs) ? firstNs : 'default',
    interval: clamp(parseInt(query.get('interval') || '2000', 10) || 2000, 250, 60000),
    live: true,
    view: 'overview',
    filters: {},
    rows: [],
    next: null,
    pagesLoaded: 1,
    selected: null,
    detail: null,
    axis: 'time',
    timeline: [],
    cursor: -1,
    clock: null,
    clockAt: 0,
    rules: [],
    rulesAt: 0,
    scenarios: [],
    announced: '',
    lastAnnounce: 0,
  };

  // ---------------------------------------------------------------- DOM helpers

  /** Builds an element; children are nodes or strings (always inserted as text). */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name === 'text') node.textContent = value;
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else if (name === 'dataset') Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? '' : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs = {}, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null) continue;
      if (name === 'class') node.setAttribute('class', value);
      else if (name === 'text') node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  /** Copies each column's header into its cells' data-label (narrow windows show it). */
  function labelCells(table) {
    const heads = $$('thead th', table).map((th) => (th.dataset.label !== undefined ? th.dataset.label : th.textContent.trim()));
    for (const tr of $$('tbody tr', table)) {
      Array.from(tr.children).forEach((cell, i) => { if (heads[i] !== undefined) cell.dataset.label = heads[i]; });
    }
  }

  const fmt = (n) => (n === undefined || n === null ? '–' : Number(n).toLocaleString('en'));
  const pct = (part, whole) => (whole ? `${Math.round((100 * part) / whole)} %` : '');
  const short = (s, n = 8) => (s && s.length > n ? `${s.slice(0, n)}…` : s || '');

  function clock(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    const pad = (v, w = 2) => String(v).padStart(w, '0');
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  /** Outcome class of a request: drives lane, shape, colour and the text label. */
  function outcomeOf(row) {
    const s = row.status;
    if (!s) return { cls: 'none', lane: 'none', label: 'no answer' };
    if (s >= 500) return { cls: 'server', lane: 'server', label: `${s} ${REASONS[s] || 'server error'}` };
    if (s === 409) return { cls: 'conflict', lane: 'client', label: `409 ${REASONS[409]}` };
    if (s >= 400) return { cls: 'client', lane: 'client', label: `${s} ${REASONS[s] || 'refused'}` };
    const rejected = (row.outcomes && row.outcomes.rejected) || 0;
    if (rejected) return { cls: 'partial', lane: 'ok', label: `${s} ${REASONS[s] || ''}, ${rejected} rejected`.trim() };
    return { cls: 'ok', lane: 'ok', label: `${s} ${REASONS[s] || ''}`.trim() };
  }

  function badge(row) {
    const o = outcomeOf(row);
    const text = row.code && row.status ? `${row.status} ${row.code}` : o.label;
    return el('span', { class: `badge o-${o.cls}`, text });
  }

  function statusClass(status) {
    return outcomeOf({ status: Number(status), outcomes: {} }).cls;
  }

  const signatures = new Map();

  /** True when ``data`` differs from what ``name`` last rendered: polls that bring nothing
   * new leave the DOM (and the focus, hover and scroll in it) alone. */
  function changed(name, data) {
    const sig = JSON.stringify(data);
    if (signatures.get(name) === sig) return false;
    signatures.set(name, sig);
    return true;
  }

  // ---------------------------------------------------------------- admin API

  class ApiError extends Error {
    constructor(status, message, violations = []) {
      super(message);
      this.status = status;
      this.violations = violations;
    }
  }

  let tokenPrompt = null;

  /** Calls the admin API with the admin token when there is one; a 401 asks for it. */
  async function api(path, { method = 'GET', body, params, raw = false } = {}) {
    const url = new URL(API + path, location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
    }
    for (;;) {
      const headers = { Accept: 'application/json' };
      const token = sessionStorage.getItem(TOKEN_KEY);
      if (token) headers[TOKEN_HEADER] = token;
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      let res;
      try {
        res = await fetch(url, {
          method, headers, cache: 'no-store', credentials: 'same-origin',
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (err) {
        throw new ApiError(0, `cannot reach the mock (${err.message})`);
      }
      if (res.status === 401) {
        if (token) sessionStorage.removeItem(TOKEN_KEY);
        await askForToken(token ? 'That token was refused. ' : '');
        continue;
      }
      if (raw && res.ok) return res;
      const text = await res.text();
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
      if (!res.ok) {
        const d = (data && data.data) || {};
        const violations = (d.details && d.details.violations) || [];
        throw new ApiError(res.status, d.message || `${res.status} ${res.statusText}`, violations);
      }
      return data;
    }
  }

  /** Shows the token dialog once for all waiting calls; resolves when a token was given. */
  function askForToken(prefix) {
    if (tokenPrompt) return tokenPrompt;
    tokenPrompt = new Promise((resolve, reject) => {
      const dialog = $('#token-dialog');
      const input = $('#token-input');
      $('#token-msg').textContent = `${prefix}This mock asks for its admin token. It is kept in this ` +
        'browser tab only (session storage) and sent with each admin call.';
      input.value = '';
      dialog.returnValue = '';
      const onClose = () => {
        dialog.removeEventListener('close', onClose);
        tokenPrompt = null;
        const given = input.value;
        input.value = '';
        if (dialog.returnValue === 'ok' && given) {
          sessionStorage.setItem(TOKEN_KEY, given);
          hideAlert();
          resolve();
        } else {
          showAlert('The admin API needs its token; the dashboard is paused.', true);
          setLive(false);
          reject(new ApiError(401, 'admin token needed'));
        }
      };
      dialog.addEventListener('close', onClose);
      if (typeof dialog.showModal === 'function') dialog.showModal();
      else dialog.setAttribute('open', '');
      input.focus();
    });
    return tokenPrompt;
  }

  function showAlert(text, tokenButton = false) {
    $('#alert-text').textContent = text;
    $('#alert-token').hidden = !tokenButton;
    $('#alert').hidden = false;
  }

  function hideAlert() {
    $('#alert').hidden = true;
  }

  function showError(box, err) {
    box.replaceChildren(el('p', { text: err.message }));
    if (err.violations && err.violations.length) {
      box.append(el('ul', {}, err.violations.map((v) => el('li', {},
        el('code', { text: v.pointer || '/' }), ` ${v.message}`,
        v.rule ? el('span', { class: 'muted', text: ` (${v.rule})` }) : null))));
    }
    box.hidden = false;
  }

  function announce(text) {
    $('#announce').textContent = text;
  }

  // ---------------------------------------------------------------- namespace, views, polling

  function nsParams(extra = {}) {
    return { namespace: state.ns, ...extra };
  }

  function setNamespace(ns, push = true) {
    state.ns = ns;
    $('#ns-input').value = ns;
    for (const node of $$('.ns-name')) node.textContent = ns === '*' ? 'all namespaces' : ns;
    const url = new URL(location.href);
    if (push) {
      url.pathname = `${API}/`;
      url.searchParams.set('namespace', ns);
      history.replaceState(null, '', url);
    }
    document.title = `rokt-mock · ${ns === '*' ? 'all namespaces' : ns} · delivery health`;
    $('#accounts-table').classList.toggle('hide-ns', ns !== '*');
    const everywhere = ns === '*';
    const nsScope = $('#rule-form input[name="scope"][value="ns"]');
    nsScope.disabled = everywhere;
    if (everywhere) $('#rule-form input[name="scope"][value="*"]').checked = true;
    const nsClock = $('input[name="clock-scope"][value="ns"]');
    nsClock.disabled = everywhere;
    if (everywhere) $('input[name="clock-scope"][value="global"]').checked = true;
    $('#rules-clear').textContent = everywhere ? 'Clear every rule' : "Clear this namespace's rules";
    updateExportLinks();
    state.rows = [];
    state.next = null;
    state.timeline = [];
    state.cursor = -1;
    signatures.clear();
    state.rulesAt = 0;
  }

  function updateExportLinks() {
    const all = new URL(`${API}/journal/export`, location.origin);
    all.searchParams.set('namespace', state.ns);
    $('#export-link').href = all.pathname + all.search;
    const filtered = new URL(all);
    for (const [k, v] of Object.entries(state.filters)) if (v) filtered.searchParams.set(k, v);
    $('#export-filtered').href = filtered.pathname + filtered.search;
  }

  function route() {
    const [view, arg] = location.hash.replace(/^#/, '').split('/');
    const name = ['overview', 'requests', 'faults'].includes(view) ? view : 'overview';
    const changed = name !== state.view;
    state.view = name;
    for (const section of $$('.view')) section.hidden = section.id !== `view-${name}`;
    for (const link of $$('.views a[data-view]')) {
      if (link.dataset.view === name) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    if (name === 'requests' && arg && /^\d+$/.test(arg)) openDetail(Number(arg));
    else if (name === 'requests' && !arg) closeDetail(false);
    if (changed) tick();
  }

  let timer = null;
  let running = false;
  let again = false;

  /** One refresh of what the current view shows; the next one is scheduled when it ends. */
  async function tick() {
    clearTimeout(timer);
    if (running) { again = true; return; }
    running = true;
    try {
      const jobs = [refreshSummary()];
      if (state.view === 'overview') jobs.push(refreshFunnel(), refreshTimeline());
      if (state.view === 'requests') jobs.push(refreshRequests());
      // GET /__admin/faults takes the journal's write lock (it expires rules), so other views
      // refresh the rule count for the navigation badge only every ten seconds.
      if (state.view === 'faults') jobs.push(refreshRules(), refreshClock());
      else if (Date.now() - state.rulesAt > 10000) jobs.push(refreshRules());
      await Promise.all(jobs);
      $('#live-status').textContent = `updated ${clock(new Date().toISOString())}`;
      if ($('#alert-token').hidden) hideAlert(); // a token alert stays until a token is given
    } catch (err) {
      if (err.status !== 401) showAlert(`Could not refresh: ${err.message}`);
      $('#live-status').textContent = 'not updated';
    } finally {
      running = false;
      if (again) { again = false; tick(); } else if (state.live && !document.hidden) {
        timer = setTimeout(tick, state.interval);
      }
    }
  }

  function setLive(on) {
    state.live = on;
    const button = $('#live-toggle');
    button.setAttribute('aria-pressed', String(on));
    button.textContent = on ? 'Live updates on' : 'Live updates paused';
    if (on) tick(); else clearTimeout(timer);
  }

  // ---------------------------------------------------------------- overview

  let lastSummary = null;

  async function refreshSummary() {
    const summary = await api('/summary', { params: nsParams() });
    lastSummary = summary;
    if (state.view === 'overview') renderSummary(summary);
    const req = summary.requests;
    const ev = summary.events;
    const text = `${fmt(req.total)} requests, ${fmt(ev.received)} events received, ` +
      `${fmt(ev.accepted)} accepted, ${fmt(ev.rejected)} rejected, ${fmt(ev.duplicates)} duplicates`;
    if (text !== state.announced && Date.now() - state.lastAnnounce > 5000) {
      if (state.announced) announce(`Updated: ${text}.`);
      state.announced = text;
      state.lastAnnounce = Date.now();
    }
  }

  function renderSummary(summary) {
    if (!changed('summary', summary)) return;
    const ev = summary.events;
    const setStage = (name, value, note, of) => {
      $(`#funnel-${name}`).textContent = fmt(value);
      $(`#funnel-${name}-note`).textContent = note;
      $(`#bar-${name}`).style.width = of ? `${Math.min(100, (100 * value) / of)}%` : '0';
    };
    setStage('received', ev.received, ev.received ? `${fmt(ev.unique)} unique` : 'none yet', ev.received);
    setStage('accepted', ev.accepted, pct(ev.accepted, ev.received), ev.received);
    setStage('rejected', ev.rejected, pct(ev.rejected, ev.received), ev.received);
    setStage('duplicates', ev.duplicates, pct(ev.duplicates, ev.received), ev.received);
    $('#funnel-extra').textContent = ev.refused
      ? `${fmt(ev.refused)} more were refused with their whole request (a 4xx, or a fault answered before the events were judged).`
      : 'Refused with their whole request: none.';
    const rules = Object.entries(ev.rejectedByRule).sort((a, b) => b[1] - a[1]);
    $('#rejected-rules').replaceChildren(...(rules.length
      ? rules.map(([rule, n]) => el('li', {}, el('code', { text: rule }), el('span', { class: 'num', text: fmt(n) })))
      : [el('li', { class: 'muted', text: 'No event broke a rule.' })]));

    const req = summary.requests;
    $('#requests-total').textContent = fmt(req.total);
    // By status, with "no answer" (0) last: it is the worst outcome, not the first.
    const rank = (status) => (Number(status) === 0 ? 1000 : Number(status));
    const statuses = Object.entries(req.byStatus).sort((a, b) => rank(a[0]) - rank(b[0]));
    const most = Math.max(1, ...statuses.map(([, n]) => n));
    $('#status-list').replaceChildren(...(statuses.length ? statuses.map(([status, n]) => {
      const cls = statusClass(status);
      const label = Number(status) ? `${status} ${REASONS[status] || ''}` : 'no answer (0)';
      const bar = el('span', { class: 'bar' }, el('span', { class: 'fill' }));
      bar.firstChild.style.width = `${(100 * n) / most}%`;
      return el('li', { class: `o-${cls}`, dataset: { status } },
        el('span', { class: `badge o-${cls}`, text: label.trim() }), bar,
        el('span', { class: 'count-n', text: fmt(n) }));
    }) : [el('li', { class: 'muted', text: 'No requests yet.' })]));
    const faults = Object.entries(req.byFault).sort((a, b) => b[1] - a[1]);
    $('#fault-kinds').replaceChildren(...(faults.length
      ? faults.map(([kind, n]) => el('li', {}, el('span', { class: 'fault-tag', text: `fault: ${kind}` }), el('span', { class: 'num', text: fmt(n) })))
      : [el('li', { class: 'muted', text: 'None injected.' })]));
  }

  async function refreshFunnel() {
    const data = await api('/dashboard/funnel', { params: nsParams() });
    if (!changed('funnel', data)) return;
    const body = $('#accounts-table tbody');
    const statusText = (by) => Object.entries(by).sort((a, b) => Number(a[0]) - Number(b[0]))
      .map(([s, n]) => `${Number(s) ? s : 'no answer'} ×${n}`).join(', ');
    body.replaceChildren(...data.rows.map((row) => el('tr', { dataset: { account: row.accountId || '' } },
      el('td', { class: 'col-ns', text: row.namespace }),
      el('td', { class: 'mono', text: row.accountId || '(none: token requests, unreadable bodies)' }),
      el('td', { class: 'num', text: fmt(row.requests.total) }),
      el('td', { text: statusText(row.requests.byStatus) }),
      el('td', { class: 'num', dataset: { k: 'received' }, text: fmt(row.events.received) }),
      el('td', { class: 'num', dataset: { k: 'accepted' }, text: fmt(row.events.accepted) }),
      el('td', { class: 'num', dataset: { k: 'rejected' }, text: fmt(row.events.rejected) }),
      el('td', { class: 'num', dataset: { k: 'duplicates' }, text: fmt(row.events.duplicates) }),
      el('td', { class: 'num', dataset: { k: 'refused' }, text: fmt(row.events.refused) }))));
    if (!data.rows.length) {
      body.append(el('tr', {}, el('td', { colspan: '9', class: 'muted', text: 'No requests yet.' })));
    }
    labelCells($('#accounts-table'));
    $('#accounts-note').textContent = data.complete
      ? ''
      : `Counted over the newest ${fmt(data.window)} requests; the namespace has more (the totals above are exact).`;
  }

  async function refreshTimeline() {
    const data = await api('/dashboard/requests', { params: nsParams({ limit: TIMELINE_LIMIT }) });
    const rows = data.requests.slice().reverse();
    const changed = rows.length !== state.timeline.length ||
      (rows.length && rows[rows.length - 1].id !== state.timeline[state.timeline.length - 1].id) ||
      rows.some((r, i) => r.status !== state.timeline[i].status);
    const keep = state.cursor >= 0 && state.timeline[state.cursor] ? state.timeline[state.cursor].id : null;
    state.timeline = rows;
    if (keep !== null) state.cursor = rows.findIndex((r) => r.id === keep);
    if (changed || !$('#timeline svg')) renderTimeline();
  }

  /** Requests grouped into one batch's attempts: the same v1 key, or the same v2 body. */
  function batches(rows) {
    const groups = new Map();
    for (const row of rows) {
      let key = null;
      if (row.idempotencyKey) key = `key:${row.idempotencyKey}`;
      else if (row.apiVersion === 'v2' && row.bodySha256 && row.endpoint.endsWith('/events')) key = `body:${row.bodySha256}`;
      if (!key) continue;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(row);
    }
    return [...groups.entries()].filter(([, list]) => list.length > 1);
  }

  function describe(row) {
    const o = outcomeOf(row);
    const parts = [`Request #${row.id}`, `${row.method} ${row.endpoint}`, row.code ? `${o.label} (${row.code})` : o.label];
    if (state.ns === '*') parts.splice(1, 0, `namespace ${row.namespace}`);
    if (row.eventCount) parts.push(`${row.eventCount} event${row.eventCount === 1 ? '' : 's'}`);
    if (row.fault) parts.push(`injected fault: ${row.fault.kind}${row.fault.rule ? ` (rule ${row.fault.rule})` : ''}`);
    if (row.idempotencyKey) parts.push(`key ${short(row.idempotencyKey)}`);
    parts.push(`at ${clock(row.wallTime)}`);
    return parts.join(', ');
  }

  function renderTimeline() {
    const host = $('#timeline');
    const rows = state.timeline;
    if (!rows.length) {
      host.replaceChildren(el('p', { class: 'muted', text: 'No requests yet. Send some to the mock and they appear here.' }));
      $('#timeline-focus').textContent = '';
      return;
    }
    const narrow = host.clientWidth < 600;
    const width = Math.max(320, host.clientWidth || 900);
    const left = narrow ? 62 : 86;
    const right = 16;
    const top = 18;
    const laneH = narrow ? 40 : 46;
    const height = top + LANES.length * laneH + 28;
    const span = width - left - right;
    const times = rows.map((r) => Date.parse(r.wallTime));
    const t0 = Math.min(...times);
    const t1 = Math.max(...times);
    let xOf;
    if (state.axis === 'time') {
      xOf = (r, i) => (t1 > t0 ? left + ((Date.parse(r.wallTime) - t0) / (t1 - t0)) * span : left + span / 2 + (i - rows.length / 2) * 2);
    } else {
      xOf = (r, i) => (rows.length > 1 ? left + (i / (rows.length - 1)) * span : left + span / 2);
    }
    const laneIndex = Object.fromEntries(LANES.map((l, i) => [l.key, i]));
    const points = rows.map((r, i) => {
      const o = outcomeOf(r);
      return { row: r, o, x: xOf(r, i), y: top + laneIndex[o.lane] * laneH + laneH / 2 };
    });
    const byId = new Map(points.map((p) => [p.row.id, p]));

    const chart = svg('svg', {
      viewBox: `0 0 ${width} ${height}`, width, height, role: 'listbox', tabindex: '0',
      'aria-label': `Timeline of the newest ${rows.length} requests`, 'aria-describedby': 'timeline-help',
    });
    LANES.forEach((lane, i) => {
      chart.append(svg('rect', { class: `lane${i % 2 ? ' alt' : ''}`, x: 0, y: top + i * laneH, width, height: laneH }));
      chart.append(svg('text', { class: 'lane-label', x: 6, y: top + i * laneH + laneH / 2 + 4, text: lane.label }));
    });
    // Axis: a few ticks, times or request ids.
    const ticks = Math.min(narrow ? 3 : 6, rows.length);
    // Bursts a few seconds long need milliseconds to tell the ticks apart; days need the date.
    const tickText = (ms) => {
      const iso = new Date(ms).toISOString();
      if (t1 - t0 > 86400000) return `${iso.slice(5, 10)} ${clock(iso).slice(0, 5)}`;
      return t1 - t0 < 60000 ? clock(iso).slice(narrow ? 3 : 0) : clock(iso).slice(0, 8);
    };
    for (let t = 0; t < ticks; t++) {
      const frac = ticks === 1 ? 0.5 : t / (ticks - 1);
      const x = left + frac * span;
      chart.append(svg('line', { class: 'tick', x1: x, x2: x, y1: top, y2: top + LANES.length * laneH }));
      let label;
      if (state.axis === 'time') {
        label = tickText(t0 + frac * (t1 - t0));
      } else {
        label = `#${rows[Math.round(frac * (rows.length - 1))].id}`;
      }
      const anchor = t === 0 && ticks > 1 ? 'start' : t === ticks - 1 && ticks > 1 ? 'end' : 'middle';
      chart.append(svg('text', { class: 'axis', x, y: height - 8, 'text-anchor': anchor, text: label }));
    }
    // Retries of one batch, drawn under the marks.
    const groups = batches(rows);
    for (const [key, list] of groups) {
      const pts = list.map((r) => byId.get(r.id));
      const d = pts.map((p, i) => `${i ? 'L' : 'M'}${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(' ');
      const isKey = key.startsWith('key:');
      const value = key.slice(key.indexOf(':') + 1);
      const link = svg('path', {
        d, class: `k-link retry-link${isKey ? '' : ' body'}`, 'data-key': value, 'data-attempts': list.length,
      }, svg('title', { text: isKey
        ? `${list.length} attempts of one batch, Idempotency-Key ${value}`
        : `${list.length} deliveries of the same v2 body` }));
      chart.append(link);
      if (isKey && groups.length <= 12) {
        chart.append(svg('text', { class: 'key-label', x: pts[0].x - 8, y: pts[0].y + 21, text: `key ${short(value)}` }));
      }
    }
    // The marks: lane and shape say the outcome, colour helps, a flag marks an injected fault.
    points.forEach((p, i) => {
      const { row, o, x, y } = p;
      const g = svg('g', {
        class: `mark o-${o.cls}${row.fault ? ' has-fault' : ''}`, id: `tl-${row.id}`, role: 'option',
        'aria-selected': String(i === state.cursor), 'aria-label': describe(row), 'data-id': row.id,
      }, svg('title', { text: describe(row) }));
      if (o.lane === 'ok') g.append(svg('circle', { cx: x, cy: y, r: 6, class: `k-${o.cls}` }));
      else if (o.lane === 'client') g.append(svg('rect', { x: x - 6, y: y - 6, width: 12, height: 12, class: `k-${o.cls}` }));
      else if (o.lane === 'server') g.append(svg('path', { d: `M${x} ${y - 7} L${x + 7} ${y + 6} L${x - 7} ${y + 6} Z`, class: 'k-server' }));
      else g.append(svg('path', { d: `M${x - 5} ${y - 5} L${x + 5} ${y + 5} M${x + 5} ${y - 5} L${x - 5} ${y + 5}`, class: 'k-none' }));
      if (row.fault) {
        g.append(svg('circle', { cx: x, cy: y, r: 10, class: 'k-ring' }));
        g.append(svg('path', { d: `M${x - 5} ${y - 19} L${x + 5} ${y - 19} L${x} ${y - 12} Z`, class: 'k-fault fault-flag' }));
      }
      g.addEventListener('click', () => { location.hash = `#requests/${row.id}`; });
      chart.append(g);
    });
    if (state.cursor >= 0 && points[state.cursor]) {
      const p = points[state.cursor];
      chart.append(svg('circle', { class: 'cursor', cx: p.x, cy: p.y, r: 12 }));
      chart.setAttribute('aria-activedescendant', `tl-${p.row.id}`);
    }
    chart.addEventListener('keydown', onTimelineKey);
    const hadFocus = document.activeElement && document.activeElement.closest && document.activeElement.closest('#timeline');
    host.replaceChildren(chart);
    if (hadFocus) chart.focus();
  }

  function onTimelineKey(event) {
    const n = state.timeline.length;
    if (!n) return;
    let c = state.cursor;
    if (event.key === 'ArrowRight' || event.key === 'ArrowDown') c = c < 0 ? n - 1 : Math.min(n - 1, c + 1);
    else if (event.key === 'ArrowLeft' || event.key === 'ArrowUp') c = c < 0 ? n - 1 : Math.max(0, c - 1);
    else if (event.key === 'Home') c = 0;
    else if (event.key === 'End') c = n - 1;
    else if ((event.key === 'Enter' || event.key === ' ') && c >= 0) {
      event.preventDefault();
      location.hash = `#requests/${state.timeline[c].id}`;
      return;
    } else return;
    event.preventDefault();
    state.cursor = c;
    renderTimeline();
    $('#timeline-focus').textContent = describe(state.timeline[c]);
  }

  // ---------------------------------------------------------------- requests

  async function refreshRequests() {
    const params = nsParams({ ...state.filters, limit: PAGE });
    const data = await api('/dashboard/requests', { params });
    // Keep pages the user loaded below the fresh first page.
    const fresh = data.requests;
    const oldest = fresh.length ? fresh[fresh.length - 1].id : Infinity;
    const older = state.pagesLoaded > 1 ? state.rows.filter((r) => r.id < oldest) : [];
    state.rows = fresh.concat(older);
    if (state.pagesLoaded <= 1) state.next = data.next;
    renderRequests();
  }

  async function loadOlder() {
    if (state.next === null) return;
    const data = await api('/dashboard/requests', { params: nsParams({ ...state.filters, limit: PAGE, before: state.next }) });
    state.rows = state.rows.concat(data.requests);
    state.next = data.next;
    state.pagesLoaded += 1;
    renderRequests();
  }

  function eventsText(row) {
    if (row.eventCount === null || row.eventCount === undefined) return '–';
    const o = row.outcomes || {};
    const parts = ['accepted', 'duplicate', 'rejected', 'refused'].filter((k) => o[k]).map((k) => `${o[k]} ${k}`);
    return parts.length ? `${row.eventCount}: ${parts.join(', ')}` : String(row.eventCount);
  }

  function renderRequests() {
    if (!changed('requests', [state.rows, state.next, state.selected])) return;
    const body = $('#req-table tbody');
    const focusedId = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.rid : null;
    body.replaceChildren(...state.rows.map((row) => {
      const link = el('a', { href: `#requests/${row.id}`, dataset: { rid: String(row.id) }, 'aria-label': `Request ${row.id}` }, `#${row.id}`);
      const tr = el('tr', { dataset: { id: String(row.id), status: String(row.status) } },
        el('td', {}, link),
        el('td', { class: 'mono', title: `mock clock ${row.at}`, text: clock(row.wallTime) }),
        el('td', {}, el('span', { class: 'muted', text: `${row.method} ` }), row.namespace !== 'default' && state.ns === '*' ? `/ns/${row.namespace}` : '', row.endpoint),
        el('td', { class: 'answer' }, badge(row),
          row.violationCount ? el('span', { class: 'muted', text: ` ${row.violationCount} violation${row.violationCount === 1 ? '' : 's'}` }) : null,
          row.fault ? [' ', el('span', { class: 'fault-tag', text: `fault: ${row.fault.kind}` })] : null),
        el('td', { text: eventsText(row), class: row.eventCount === null || row.eventCount === undefined ? 'empty' : null }),
        el('td', { class: `col-key key${row.idempotencyKey ? '' : ' empty'}`, title: row.idempotencyKey || '', text: short(row.idempotencyKey) || '–' }));
      if (row.id === state.selected) tr.setAttribute('aria-current', 'true');
      tr.addEventListener('click', (event) => {
        if (event.target.closest('a')) return;
        location.hash = `#requests/${row.id}`;
      });
      return tr;
    }));
    labelCells($('#req-table'));
    $('#req-empty').hidden = state.rows.length > 0;
    $('#older').hidden = state.next === null;
    if (focusedId) {
      const again = body.querySelector(`a[data-rid="${focusedId}"]`);
      if (again) again.focus();
    }
  }

  function readFilters() {
    const form = $('#filters');
    const out = {};
    for (const name of ['status', 'endpoint', 'clientEventId', 'idempotencyKey', 'fault']) {
      const value = form.elements[name].value.trim();
      if (value) out[name] = value;
    }
    return out;
  }

  async function applyFilters(event) {
    if (event) event.preventDefault();
    const box = $('#filters-error');
    box.hidden = true;
    state.filters = readFilters();
    const active = Object.entries(state.filters).map(([k, v]) => `${k}=${v}`).join(', ');
    $('#filters-summary').textContent = active ? `(${active})` : '';
    state.pagesLoaded = 1;
    state.rows = [];
    updateExportLinks();
    try {
      await refreshRequests();
      announce(`${state.rows.length}${state.next === null ? '' : '+'} requests match.`);
    } catch (err) {
      showError(box, err);
    }
  }

  // ---------------------------------------------------------------- drill-down

  async function openDetail(id) {
    state.selected = id;
    for (const tr of $$('#req-table tbody tr')) {
      if (Number(tr.dataset.id) === id) tr.setAttribute('aria-current', 'true');
      else tr.removeAttribute('aria-current');
    }
    const panel = $('#detail');
    panel.hidden = false;
    $('.split').classList.add('has-detail');
    $('#detail-h').textContent = `Request #${id}`;
    $('#detail-body').replaceChildren(el('p', { class: 'muted', text: 'Loading…' }));
    let row;
    try {
      const data = await api('/requests', { params: { namespace: '*', before: id + 1, limit: 1 } });
      row = data.requests[0];
    } catch (err) {
      $('#detail-body').replaceChildren(el('p', { class: 'error', text: err.message }));
      return;
    }
    if (state.selected !== id) return;
    if (!row || row.id !== id) {
      $('#detail-body').replaceChildren(el('p', { class: 'muted', text: `Request #${id} is not in the journal (it may have been reset).` }));
      return;
    }
    state.detail = row;
    renderDetail(row);
    // Bring the first highlighted spot into the body's own scroll box, not the page's.
    for (const pre of $$('#detail .json')) {
      const hit = pre.querySelector('.violation, .warning');
      if (hit) pre.scrollTop = Math.max(0, hit.offsetTop - 48); // .json is position: relative
    }
    panel.focus({ preventScroll: true });
    panel.scrollIntoView({ block: 'nearest' });
  }

  function closeDetail(moveFocus = true) {
    const id = state.selected;
    state.selected = null;
    state.detail = null;
    $('#detail').hidden = true;
    $('.split').classList.remove('has-detail');
    for (const tr of $$('#req-table tbody tr')) tr.removeAttribute('aria-current');
    if (location.hash.startsWith('#requests/')) history.replaceState(null, '', '#requests');
    if (moveFocus && id !== null) {
      const link = $(`#req-table a[data-rid="${id}"]`);
      if (link) link.focus();
    }
  }

  function renderDetail(row) {
    const out = [];
    const o = outcomeOf({ ...row, outcomes: countOutcomes(row.events) });
    const facts = [
      ['Answer', badge({ ...row, outcomes: countOutcomes(row.events) })],
      ['Request', `${row.method} ${row.path}`],
      ['Namespace', row.namespace],
      ['Received', `${clock(row.wallTime)} (${row.wallTime})`],
      ['Mock clock', row.at],
      ['API version', row.apiVersion || '–'],
      ['Credential', row.credential || '–'],
      ['Account', row.accountId || '–'],
      ['Idempotency-Key', row.idempotencyKey ? el('span', {}, el('code', { text: row.idempotencyKey }), ' ',
        el('a', { href: '#requests', onclick: (e) => { e.preventDefault(); filterByKey(row.idempotencyKey); } }, 'all attempts with this key')) : '–'],
      ['Body', `${fmt(row.bodySize)} bytes${row.bodySha256 ? `, sha256 ${short(row.bodySha256, 12)}` : ''}`],
      ['Duration', row.durationMs === null || row.durationMs === undefined ? '–' : `${row.durationMs.toFixed(1)} ms`],
    ];
    if (row.note && row.note.idempotency) {
      const n = row.note.idempotency;
      facts.push(['Key first accepted', el('span', {}, el('a', { href: `#requests/${n.originalRequestId}` }, `request #${n.originalRequestId}`),
        n.bodyDiffers ? ', with a different body' : ', same body')]);
    }
    out.push(el('dl', {}, facts.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', {}, v)])));
    out.push(el('p', { class: 'sr-only', text: `Outcome: ${o.label}` }));

    if (row.fault) {
      const f = row.fault;
      const bits = [`kind ${f.kind || 'delay'}`, f.rule ? `rule ${f.rule}` : null, f.source ? `from ${f.source}` : null,
        f.attempt ? `attempt ${f.attempt}` : null, f.delaySeconds ? `latency ${f.delaySeconds} s` : null,
        f.retryAfter !== undefined ? `Retry-After ${f.retryAfter}` : null, f.committed ? 'committed before failing' : null].filter(Boolean);
      out.push(el('h4', { text: 'Injected fault' }), el('p', {}, el('span', { class: 'fault-tag', text: 'fault' }), ` ${bits.join(', ')}`));
    }

    const violations = row.violations || [];
    const warnings = row.warnings || [];
    const items = violations.map((v, i) => ({ ...v, kind: 'violation', anchor: `v-${row.id}-${i}` }))
      .concat(warnings.map((v, i) => ({ ...v, kind: 'warning', anchor: `w-${row.id}-${i}` })));
    if (items.length) {
      out.push(el('h4', { text: `Violations (${violations.length}) and warnings (${warnings.length})` }));
      out.push(el('ol', { class: 'violations' }, items.map((v) => el('li', { class: v.kind, dataset: { pointer: v.pointer || '', rule: v.rule || '' } },
        el('span', { class: `badge ${v.kind === 'violation' ? 'o-server' : 'o-none'}`, text: v.kind }), ' ',
        el('span', { class: 'rule', text: v.rule || '' }), ' at ',
        el('code', { text: `${v.in || 'body'} ${v.pointer || '/'}` }), `: ${v.message}`,
        el('button', { type: 'button', class: 'small secondary', onclick: () => jumpTo(v.anchor), 'aria-label': `Show ${v.rule} in the ${v.in === 'header' ? 'headers' : 'body'}` }, 'show')))));
    }

    if (row.events && row.events.length) {
      out.push(el('h4', { text: `Events (${row.events.length})` }));
      out.push(el('div', { class: 'scroll', role: 'region', tabindex: '0', 'aria-label': 'Events of this request' },
        el('table', {}, el('thead', {}, el('tr', {}, ['#', 'clientEventId', 'eventType', 'Outcome'].map((h) => el('th', { scope: 'col', text: h })))),
          el('tbody', {}, row.events.map((e) => el('tr', {},
            el('td', { text: String(e.index) }), el('td', { class: 'key', text: e.clientEventId || '–' }),
            el('td', { text: e.eventType || '–' }),
            el('td', {}, el('span', { class: `badge o-${{ accepted: 'ok', duplicate: 'conflict', rejected: 'partial', refused: 'client' }[e.outcome] || 'none'}`, text: e.outcome }),
              e.rule ? el('span', { class: 'muted', text: ` ${e.rule}` }) : null)))))));
    }

    out.push(el('h4', { text: 'Headers (as journaled; credentials redacted)' }));
    const headerHits = items.filter((v) => v.in === 'header');
    out.push(el('div', { class: 'scroll' }, el('table', { class: 'headers' }, el('tbody', {},
      Object.entries(row.headers || {}).map(([name, value]) => {
        const hits = headerHits.filter((v) => (v.pointer || '').replace(/^\//, '').toLowerCase() === name.toLowerCase());
        const tr = el('tr', { class: hits.length ? 'violation' : null, id: hits.length ? hits[0].anchor : null, tabindex: hits.length ? '-1' : null },
          el('th', { scope: 'row', text: name }),
          el('td', { class: 'mono' }, value, hits.map((v) => el('span', { class: 'annot', text: ` ← ${v.rule}: ${v.message}` }))));
        hits.slice(1).forEach((v) => tr.setAttribute(`data-also-${v.anchor}`, ''));
        return tr;
      }),
      headerHits.filter((v) => !Object.keys(row.headers || {}).some((n) => n.toLowerCase() === (v.pointer || '').replace(/^\//, '').toLowerCase()))
        .map((v) => el('tr', { class: 'violation', id: v.anchor, tabindex: '-1' },
          el('th', { scope: 'row', text: (v.pointer || '').replace(/^\//, '') }),
          el('td', {}, el('em', { text: '(missing)' }), el('span', { class: 'annot', text: ` ← ${v.rule}: ${v.message}` }))))))));

    out.push(el('h4', { text: 'Body' }));
    out.push(renderBody(row, items.filter((v) => v.in !== 'header' && v.in !== 'query')));

    out.push(el('h4', { text: 'Response' }));
    out.push(row.response === null || row.response === undefined
      ? el('p', { class: 'muted', text: 'No response body was recorded (no answer was sent).' })
      : el('pre', { class: 'json', tabindex: '0', 'aria-label': 'Response body' }, prettyTree(row.response, '').node));
    $('#detail-body').replaceChildren(...out);
  }

  function countOutcomes(events) {
    const out = {};
    for (const e of events || []) out[e.outcome] = (out[e.outcome] || 0) + 1;
    return out;
  }

  function filterByKey(key) {
    const form = $('#filters');
    form.reset();
    form.elements.idempotencyKey.value = key;
    closeDetail(false);
    applyFilters();
  }

  function jumpTo(anchor) {
    const target = document.getElementById(anchor);
    if (!target) return;
    target.scrollIntoView({ block: 'center' });
    target.focus({ preventScroll: true });
  }

  function renderBody(row, hits) {
    if (row.body === null || row.body === undefined) {
      if (row.bodyBase64) return el('p', { class: 'muted', text: `A body of ${fmt(row.bodySize)} bytes that is not UTF-8 (not shown).` });
      return el('p', { class: 'muted', text: 'No body.' });
    }
    let doc;
    let parsed = false;
    if (row.body.length <= MAX_PRETTY) {
      try { doc = JSON.parse(row.body); parsed = true; } catch (_) { parsed = false; }
    }
    const pre = el('pre', { class: 'json', tabindex: '0', 'aria-label': 'Request body' });
    if (!parsed) {
      pre.append(row.body.length > MAX_PRETTY ? `${row.body.slice(0, MAX_PRETTY)}\n… (${fmt(row.body.length - MAX_PRETTY)} more characters)` : row.body);
      const box = el('div', {}, el('p', { class: 'muted', text: row.body.length > MAX_PRETTY ? 'Large body: shown as sent.' : 'Not valid JSON: shown as sent.' }), pre);
      hits.forEach((v) => {
        box.prepend(el('p', { class: 'error', id: v.anchor, tabindex: '-1' }, `${v.rule} at ${v.pointer || '/'}: ${v.message}`));
      });
      return box;
    }
    const tree = prettyTree(doc, '');
    pre.append(tree.node);
    for (const v of hits) {
      let pointer = v.pointer || '';
      let missing = false;
      while (!tree.nodes.has(pointer) && pointer) {
        pointer = pointer.slice(0, pointer.lastIndexOf('/'));
        missing = true;
      }
      const node = tree.nodes.get(pointer);
      if (!node) continue;
      node.classList.add(v.kind);
      node.dataset.rule = [node.dataset.rule, v.rule].filter(Boolean).join(' ');
      const note = el('span', { class: `annot${v.kind === 'warning' ? ' warn' : ''}`, id: v.anchor, tabindex: '-1', dataset: { rule: v.rule || '', pointer: v.pointer || '' } },
        `${v.kind === 'warning' ? 'warning' : 'violation'} ${v.rule}${missing ? ` (${v.pointer} is missing)` : ''}: ${v.message}`);
      // The note goes on its own line under the marked value, at the value's indentation.
      const depth = pointer ? pointer.split('/').length - 1 : 0;
      if (!pointer) {
        node.before(note, '\n');
        continue;
      }
      let after = node;
      if (after.nextSibling && after.nextSibling.nodeType === Node.TEXT_NODE && after.nextSibling.data === ',') after = after.nextSibling;
      after.after('\n', '  '.repeat(depth), note);
    }
    return pre;
  }

  /** Pretty-prints JSON into spans that carry their JSON pointer, so violations can be marked. */
  function prettyTree(value, pointer) {
    const nodes = new Map();
    const esc = (key) => String(key).replace(/~/g, '~0').replace(/\//g, '~1');
    function walk(v, ptr, indent) {
      let span;
      if (Array.isArray(v)) {
        span = el('span', { class: 'arr' });
        if (!v.length) span.append('[]');
        else {
          span.append('[\n');
          v.forEach((item, i) => {
            span.append(`${indent}  `, walk(item, `${ptr}/${i}`, `${indent}  `), i < v.length - 1 ? ',' : '', '\n');
          });
          span.append(`${indent}]`);
        }
      } else if (v && typeof v === 'object') {
        span = el('span', { class: 'obj' });
        const keys = Object.keys(v);
        if (!keys.length) span.append('{}');
        else {
          span.append('{\n');
          keys.forEach((k, i) => {
            const child = `${ptr}/${esc(k)}`;
            const member = el('span', { class: 'member' }, el('span', { class: 'k', text: JSON.stringify(k) }), ': ', walk(v[k], child, `${indent}  `));
            nodes.set(child, member);
            span.append(`${indent}  `, member, i < keys.length - 1 ? ',' : '', '\n');
          });
          span.append(`${indent}}`);
        }
      } else {
        const cls = typeof v === 'string' ? 's' : typeof v === 'number' ? 'n' : 'b';
        span = el('span', { class: cls, text: JSON.stringify(v) });
      }
      span.dataset.pointer = ptr;
      if (!nodes.has(ptr)) nodes.set(ptr, span);
      return span;
    }
    const node = walk(value, pointer, '');
    return { node, nodes };
  }

  // ---------------------------------------------------------------- faults and clock

  async function refreshRules() {
    const data = await api('/faults', { params: nsParams() });
    state.rules = data.rules;
    state.rulesAt = Date.now();
    const own = state.rules.length;
    $('#fault-count').textContent = own ? String(own) : '';
    $('#fault-count').setAttribute('aria-label', own ? `${own} active rule${own === 1 ? '' : 's'}` : '');
    if (state.view === 'faults') renderRules();
  }

  function faultText(fault) {
    const parts = [];
    for (const [k, v] of Object.entries(fault)) {
      if (k === 'status') parts.push(`${v} ${REASONS[v] || ''}`.trim());
      else if (k === 'retryAfter') parts.push(`Retry-After ${v}s`);
      else if (k === 'delay') parts.push(`latency ${typeof v === 'number' ? `${v}s` : JSON.stringify(v)}`);
      else if (k === 'rateLimit') parts.push(`rate limit ${v.rate}/s, burst ${v.burst}`);
      else if (k === 'acceptThen') parts.push(`commit, then ${v}`);
      else if (v === true) parts.push(k);
      else parts.push(`${k} ${typeof v === 'object' ? JSON.stringify(v) : v}`);
    }
    return parts.join(', ');
  }

  function whenText(rule) {
    const w = rule.when || {};
    const parts = [];
    if (w.first) parts.push(`first ${w.first} attempt${w.first === 1 ? '' : 's'}`);
    if (w.attempts) parts.push(`attempts ${w.attempts[0]}–${w.attempts[1]}`);
    if (w.every) parts.push(`every ${w.every}th attempt`);
    if (w.probability !== undefined) parts.push(`probability ${w.probability}`);
    if (w.window) parts.push(`window ${JSON.stringify(w.window)}`);
    const m = rule.match || {};
    const matched = [m.endpoint && m.endpoint !== 'events' ? m.endpoint : 'events', m.version, m.account && `account ${m.account}`,
      m.credential && `credential ${m.credential}`, m.eventType && `eventType ${m.eventType}`].filter(Boolean).join(' ');
    return `${parts.length ? parts.join(', ') : 'every attempt'} (${matched})`;
  }

  function lifetimeText(rule) {
    const bits = [];
    if (rule.times !== undefined && rule.times !== null) {
      const left = rule.timesLeft || {};
      const here = state.ns === '*' ? null : left[state.ns];
      bits.push(state.ns === '*'
        ? `${rule.times} time${rule.times === 1 ? '' : 's'} per namespace`
        : `${here === undefined ? rule.times : here} of ${rule.times} firing${rule.times === 1 ? '' : 's'} left`);
    }
    if (rule.expiresIn !== undefined) bits.push(`expires in ${rule.expiresIn < 120 ? `${Math.ceil(rule.expiresIn)} s` : `${Math.round(rule.expiresIn / 60)} min`}`);
    return bits.length ? bits.join('; ') : 'until deleted';
  }

  function renderRules() {
    if (!changed('rules', [state.ns, state.rules])) return;
    const body = $('#rules-table tbody');
    body.replaceChildren(...state.rules.map((rule) => {
      const counters = rule.counters || {};
      const c = state.ns === '*'
        ? Object.values(counters).reduce((a, b) => ({ matched: a.matched + b.matched, fired: a.fired + b.fired }), { matched: 0, fired: 0 })
        : counters[state.ns] || { matched: 0, fired: 0 };
      return el('tr', { dataset: { rule: rule.id, scope: rule.scope } },
        el('th', { scope: 'row' }, el('code', { text: rule.id }), rule.source && rule.source !== 'api' ? el('span', { class: 'muted', text: ` (${rule.source})` }) : null),
        el('td', { text: rule.scope === '*' ? 'every namespace' : rule.scope }),
        el('td', { text: faultText(rule.fault || {}) }),
        el('td', { text: whenText(rule) }),
        el('td', { class: 'num', text: `${c.fired} / ${c.matched}` }),
        el('td', { class: 'lifetime', text: lifetimeText(rule) }),
        el('td', {}, el('button', {
          type: 'button', class: 'small danger', 'aria-label': `Delete rule ${rule.id}`,
          onclick: () => deleteRule(rule),
        }, 'Delete')));
    }));
    labelCells($('#rules-table'));
    $('#rules-empty').hidden = state.rules.length > 0;
    $('#rules-table').closest('.scroll').hidden = state.rules.length === 0;
    // Clearing acts on the namespace's own rules (all of them under *), not on * rules.
    $('#rules-clear').disabled = !state.rules.some((r) => state.ns === '*' || r.scope === state.ns);
  }

  async function deleteRule(rule) {
    try {
      await api(`/faults/${encodeURIComponent(rule.id)}`, { method: 'DELETE', params: { namespace: rule.scope } });
      $('#rules-status').textContent = `Deleted rule ${rule.id}.`;
      await refreshRules();
      const first = $('#rules-table tbody button');
      (first || $('#rules-clear')).focus();
    } catch (err) {
      $('#rules-status').textContent = `Could not delete ${rule.id}: ${err.message}`;
    }
  }

  async function clearRules() {
    try {
      const data = await api('/faults', { method: 'DELETE', params: nsParams() });
      $('#rules-status').textContent = `Deleted ${data.deleted} rule${data.deleted === 1 ? '' : 's'}.`;
      await refreshRules();
    } catch (err) {
      $('#rules-status').textContent = `Could not clear: ${err.message}`;
    }
  }

  function scopeChoice() {
    const picked = $('#rule-form input[name="scope"]:checked').value;
    return picked === '*' || state.ns === '*' ? '*' : state.ns;
  }

  function num(form, name) {
    const raw = form.elements[name].value.trim();
    return raw === '' ? undefined : Number(raw);
  }

  /** The rule the form describes, in the shape POST /__admin/faults takes. */
  function ruleFromForm(form) {
    const json = form.elements.json.value.trim();
    if (json) return JSON.parse(json);
    const kind = form.elements.kind.value;
    const fault = {};
    if (kind === 'status') {
      fault.status = Number(form.elements.status.value);
      const retry = num(form, 'retryAfter');
      if (retry !== undefined) fault.retryAfter = retry;
    } else if (kind === 'rateLimit') fault.rateLimit = { rate: num(form, 'rate'), burst: num(form, 'burst') };
    else if (kind === 'acceptThen') {
      const then = form.elements.then.value;
      fault.acceptThen = /^\d+$/.test(then) ? Number(then) : then;
    } else if (kind === 'stall') fault.stall = num(form, 'stall');
    else if (kind === 'truncate') fault.truncate = num(form, 'truncate');
    else if (kind === 'dribble') fault.dribble = { seconds: num(form, 'dribble') };
    else if (kind === 'partialReject') {
      fault.partialReject = { indexes: form.elements.indexes.value.split(/[\s,+]+/).filter(Boolean).map(Number) };
    } else if (kind !== 'delay') fault[kind] = true;
    const delay = num(form, 'delay');
    if (delay !== undefined) fault.delay = delay;
    if (kind === 'delay' && delay === undefined) fault.delay = 1;
    const rule = { fault };
    const id = form.elements.id.value.trim();
    if (id) rule.id = id;
    const match = {};
    if (form.elements.endpoint.value !== 'events') match.endpoint = form.elements.endpoint.value;
    if (form.elements.version.value) match.version = form.elements.version.value;
    if (Object.keys(match).length) rule.match = match;
    const when = form.elements.when.value;
    if (when === 'first' || when === 'every') rule.when = { [when]: num(form, 'n') };
    else if (when === 'probability') rule.when = { probability: num(form, 'p') };
    const times = num(form, 'times');
    if (times !== undefined) rule.times = times;
    const ttl = num(form, 'ttl');
    if (ttl !== undefined) rule.ttl = ttl;
    return rule;
  }

  function syncRuleForm() {
    const form = $('#rule-form');
    const kind = form.elements.kind.value;
    const when = form.elements.when.value;
    for (const field of $$('[data-kind]', form)) {
      const on = field.dataset.kind === kind;
      field.hidden = !on;
      for (const input of $$('input, select', field)) input.disabled = !on;
    }
    for (const field of $$('[data-when]', form)) {
      const on = field.dataset.when.split(' ').includes(when);
      field.hidden = !on;
      for (const input of $$('input, select', field)) input.disabled = !on;
    }
  }

  async function addRule(event) {
    event.preventDefault();
    const form = $('#rule-form');
    const box = $('#rule-error');
    box.hidden = true;
    let rule;
    try {
      rule = ruleFromForm(form);
    } catch (err) {
      showError(box, new ApiError(0, `The JSON does not parse: ${err.message}`));
      return;
    }
    try {
      const data = await api('/faults', { method: 'POST', body: rule, params: { namespace: scopeChoice() } });
      const ids = data.rules.map((r) => r.id).join(', ');
      $('#rules-status').textContent = `Added rule ${ids}.`;
      announce(`Added fault rule ${ids}.`);
      await refreshRules();
    } catch (err) {
      showError(box, err);
    }
  }

  async function loadScenarios() {
    try {
      const data = await api('/dashboard/scenarios');
      state.scenarios = data.scenarios;
      $('#scenario').replaceChildren(...data.scenarios.map((s) => el('option', { value: s.name, text: s.name })));
      showScenario();
    } catch (err) {
      showError($('#scenario-error'), err);
    }
  }

  function showScenario() {
    const picked = state.scenarios.find((s) => s.name === $('#scenario').value);
    $('#scenario-desc').textContent = picked ? picked.description : '';
  }

  async function addScenario(event) {
    event.preventDefault();
    const box = $('#scenario-error');
    box.hidden = true;
    try {
      const name = $('#scenario').value;
      const data = await api('/faults', { method: 'POST', body: { scenario: name }, params: { namespace: scopeChoice() } });
      $('#rules-status').textContent = `Loaded scenario ${name}: ${data.rules.map((r) => r.id).join(', ')}.`;
      announce(`Loaded scenario ${name}.`);
      await refreshRules();
    } catch (err) {
      showError(box, err);
    }
  }

  function clockParams() {
    const scope = $('input[name="clock-scope"]:checked').value;
    return scope === 'ns' && state.ns !== '*' ? { namespace: state.ns } : {};
  }

  async function refreshClock() {
    state.clock = await api('/clock', { params: clockParams() });
    state.clockAt = Date.now();
    renderClock();
  }

  function renderClock() {
    const c = state.clock;
    if (!c) return;
    const now = c.frozen ? c.epoch * 1000 : c.epoch * 1000 + (Date.now() - state.clockAt);
    $('#clock-now').textContent = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const pill = $('#clock-state');
    pill.textContent = c.frozen ? 'frozen' : c.real ? 'real time' : 'running, shifted';
    pill.classList.toggle('frozen', c.frozen);
    const offset = c.offsetSeconds;
    const bits = [];
    if (!c.real) bits.push(`${offset >= 0 ? 'ahead of' : 'behind'} real time by ${Math.abs(offset) < 120 ? `${Math.abs(offset).toFixed(1)} s` : `${(Math.abs(offset) / 3600).toFixed(2)} h`}`);
    if (c.namespace) bits.push(c.own ? `namespace ${c.namespace} has its own clock` : `namespace ${c.namespace} follows the global clock`);
    $('#clock-detail').textContent = bits.join('; ');
    const input = $('#clock-to');
    if (document.activeElement !== input && !input.dataset.touched) input.value = $('#clock-now').textContent;
  }

  async function postClock(body, message) {
    const box = $('#clock-error');
    box.hidden = true;
    try {
      state.clock = await api('/clock', { method: 'POST', body, params: clockParams() });
      state.clockAt = Date.now();
      renderClock();
      announce(message);
    } catch (err) {
      showError(box, err);
    }
  }

  // ---------------------------------------------------------------- export

  /** With a token the export must carry the header, so it is fetched and saved as a blob. */
  async function exportClick(event) {
    if (!sessionStorage.getItem(TOKEN_KEY)) return;
    event.preventDefault();
    const link = event.currentTarget;
    try {
      const url = new URL(link.href, location.origin);
      const res = await api(url.pathname.replace(API, ''), { params: Object.fromEntries(url.searchParams), raw: true });
      const blob = await res.blob();
      const a = el('a', { href: URL.createObjectURL(blob), download: 'rokt-mock-journal.jsonl' });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (err) {
      showAlert(`Export failed: ${err.message}`);
    }
  }

  // ---------------------------------------------------------------- start

  async function loadNamespaces() {
    try {
      const data = await api('/dashboard/namespaces');
      const names = ['*', ...data.namespaces];
      $('#ns-list').replaceChildren(...names.map((n) => el('option', { value: n, label: n === '*' ? 'all namespaces' : n })));
    } catch (_) {
      // The picker still takes a typed name.
    }
  }

  async function loadServerInfo() {
    try {
      const h = await api('/health');
      // Without the admin token the health probe only says it is up, with its version.
      $('#server-info').textContent = [`v${h.version}`, h.schemaVersion && `schema ${h.schemaVersion}`,
        h.journal && `journal ${h.journal.path}`].filter(Boolean).join(' · ');
    } catch (_) {
      $('#server-info').textContent = '';
    }
  }

  function wire() {
    $('#ns-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const value = $('#ns-input').value.trim();
      if (!NS_RE.test(value)) { $('#ns-input').reportValidity(); return; }
      setNamespace(value);
      closeDetail(false);
      announce(`Showing ${value === '*' ? 'all namespaces' : `namespace ${value}`}.`);
      tick();
    });
    $('#ns-input').addEventListener('focus', loadNamespaces);
    $('#live-toggle').addEventListener('click', () => setLive(!state.live));
    $('#alert-token').addEventListener('click', () => askForToken('').then(() => setLive(true), () => {}));
    window.addEventListener('hashchange', route);
    document.addEventListener('visibilitychange', () => { if (!document.hidden && state.live) tick(); });
    for (const radio of $$('input[name="axis"]')) {
      radio.addEventListener('change', () => { state.axis = radio.value; renderTimeline(); });
    }
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => { if (state.view === 'overview') renderTimeline(); }, 150);
    });
    $('#filters').addEventListener('submit', applyFilters);
    $('#filters-clear').addEventListener('click', () => { $('#filters').reset(); applyFilters(); });
    $('#older').addEventListener('click', () => loadOlder().catch((err) => showAlert(err.message)));
    $('#detail-close').addEventListener('click', () => closeDetail(true));
    $('#detail').addEventListener('keydown', (event) => { if (event.key === 'Escape') closeDetail(true); });
    $('#rule-form').addEventListener('submit', addRule);
    $('#rule-form').elements.kind.addEventListener('change', syncRuleForm);
    $('#rule-form').elements.when.addEventListener('change', syncRuleForm);
    $('#rules-clear').addEventListener('click', clearRules);
    $('#scenario').addEventListener('change', showScenario);
    $('#scenario-form').addEventListener('submit', addScenario);
    for (const radio of $$('input[name="clock-scope"]')) radio.addEventListener('change', () => refreshClock().catch(() => {}));
    $('#clock-freeze').addEventListener('click', () => postClock({ frozen: true }, 'Clock frozen.'));
    $('#clock-unfreeze').addEventListener('click', () => postClock({ frozen: false }, 'Clock running.'));
    $('#clock-reset').addEventListener('click', () => postClock({ reset: true }, 'Clock back to real time.'));
    $('#clock-advance').addEventListener('submit', (event) => {
      event.preventDefault();
      const seconds = Number($('#clock-seconds').value);
      postClock({ advance: seconds }, `Clock advanced by ${seconds} seconds.`);
    });
    $('#clock-to').addEventListener('input', (event) => { event.target.dataset.touched = '1'; });
    $('#clock-set').addEventListener('submit', (event) => {
      event.preventDefault();
      const to = $('#clock-to').value.trim();
      delete $('#clock-to').dataset.touched;
      postClock({ now: to }, `Clock set to ${to}.`);
    });
    for (const link of [$('#export-link'), $('#export-filtered')]) link.addEventListener('click', exportClick);
    setInterval(() => { if (state.view === 'faults' && state.clock && !state.clock.frozen) renderClock(); }, 1000);
  }

  function start() {
    wire();
    // On a phone the filters would fill the first screen: start them folded.
    if (window.matchMedia('(max-width: 640px)').matches) $('#filters-box').open = false;
    syncRuleForm();
    setNamespace(state.ns, Boolean(query.get('namespace')) || Boolean(pathNs));
    if (!location.hash) history.replaceState(null, '', `${location.pathname}${location.search}#overview`);
    loadServerInfo();
    loadNamespaces();
    loadScenarios();
    route();
    tick();
  }

  document.addEventListener('DOMContentLoaded', start);
})();
