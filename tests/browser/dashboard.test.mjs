// The dashboard in a real browser: Debian's Chromium driven by playwright-core (no
// browser download), against the real burnrate binary on port 0 with the fixed data set
// of fixture/. Checks that the numbers shown are the JSON API's, that filters live in
// the URL, the spike-to-deploy workflow, and saves a screenshot of every page under
// artifacts/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const BIN = process.env.BURNRATE_BIN || path.join(root, 'target/debug/burnrate');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.join(root, 'artifacts/screenshots');
const WINDOW = 'from=2026-01-10T00:00:00Z&to=2026-01-12T00:00:00Z';

let tmp, db, key, admin, ingest, server, base, context, page, hook;
const consoleErrors = [];

function cli(...args) {
  return execFileSync(BIN, ['--db', db, ...args], { encoding: 'utf8' }).trim();
}

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ['--db', db, 'serve', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const lines = createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error('burnrate did not start')), 20000);
    lines.on('line', (line) => {
      if (line.startsWith('listening on ')) {
        clearTimeout(timer);
        resolve({ child, url: line.slice('listening on '.length).trim() });
      }
    });
    child.on('exit', (code) => reject(new Error(`burnrate exited with ${code}`)));
  });
}

async function post(pathAndQuery, withKey, body, method = 'POST') {
  const r = await fetch(base + pathAndQuery, {
    method, headers: { 'X-API-Key': withKey, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  assert.ok(r.status < 300, `${pathAndQuery}: ${r.status} ${await r.clone().text()}`);
  return r.json();
}

async function api(pathAndQuery) {
  const r = await fetch(base + pathAndQuery, { headers: { 'X-API-Key': key } });
  assert.equal(r.status, 200, `${pathAndQuery}: ${r.status}`);
  return r.json();
}

// Money as the dashboard writes it (src/http/dashboard/format.rs, `usd`): cents from $1
// up, below that four significant digits without trailing zeros (at least two
// decimals), computed from exact nano-dollars.
function toNanos(x) {
  const [whole, frac = ''] = Number(x).toFixed(9).split('.');
  return BigInt(whole) * 1_000_000_000n + BigInt(frac.padEnd(9, '0')) * (whole.startsWith('-') ? -1n : 1n);
}
function group(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}
function formatUsd(x) {
  let n = toNanos(x);
  const sign = n < 0n ? '-' : '';
  if (n < 0n) n = -n;
  if (n === 0n) return '$0.00';
  if (n >= 1_000_000_000n) {
    const cents = (n + 5_000_000n) / 10_000_000n;
    return `${sign}$${group((cents / 100n).toString())}.${(cents % 100n).toString().padStart(2, '0')}`;
  }
  const digits = n.toString().length;
  const drop = 10n ** BigInt(Math.max(digits - 4, 0));
  const rounded = ((n + drop / 2n) / drop) * drop;
  if (rounded >= 1_000_000_000n) return `${sign}$1.00`;
  const text = rounded.toString().padStart(9, '0');
  return `${sign}$0.${text.slice(0, Math.max(text.replace(/0+$/, '').length, 2))}`;
}

/** The exact value and the text of a money cell. */
async function moneyIn(locator) {
  const cell = locator.locator('[data-usd]').first();
  return { exact: Number(await cell.getAttribute('data-usd')), text: (await cell.textContent()).trim() };
}

function assertMoney(shown, apiValue, what) {
  assert.equal(shown.exact, Number(apiValue), `${what}: exact value`);
  assert.equal(shown.text, formatUsd(apiValue), `${what}: as written`);
}

/** A group with only unpriced calls reads "unpriced (N calls)", never $0.00. */
function assertUnpriced(text, count, what) {
  assert.equal(text.trim(), `unpriced (${count} call${count === 1 ? '' : 's'})`, `${what}: unpriced`);
}

async function open(pathAndQuery) {
  const r = await page.goto(base + pathAndQuery);
  assert.equal(r.status(), 200, pathAndQuery);
}

async function shot(name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'burnrate-browser-'));
  db = path.join(tmp, 'b.db');
  cli('prices', 'import', path.join(here, 'fixture/overrides.json'));
  cli('import', path.join(here, 'fixture/events.jsonl'));
  key = cli('keys', 'create', '--scope', 'read');
  admin = cli('keys', 'create', '--scope', 'admin');
  ingest = cli('keys', 'create', '--scope', 'ingest');
  server = await startServer();
  base = server.url;
  // The fixture's spike hours hold 5 or 6 calls: the spike marker follows the
  // workspace's spend-spike rule, whose default minimum is 20 calls an hour.
  await post('/v1/alert-rules', admin, { rules: { hourly_spend_spike: { minRequests: 5 } } }, 'PUT');
  fs.mkdirSync(SHOTS, { recursive: true });
  context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1440, height: 900 },
  });
  page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(e.message));
});

after(async () => {
  await context?.close();
  hook?.close();
  server?.child.kill();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('login: a page asks for a key, the key gives an HttpOnly SameSite=Strict session', async () => {
  await page.goto(`${base}/?${WINDOW}`);
  assert.match(page.url(), /\/login\?next=/);
  await shot('login');
  await page.fill('#key', key);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.click('button[type=submit]')]);
  assert.equal(new URL(page.url()).pathname, '/');
  assert.equal(new URL(page.url()).searchParams.get('from'), '2026-01-10T00:00:00Z', 'back where we were going');
  const [cookie] = (await context.cookies()).filter((c) => c.name === 'burnrate_session');
  assert.ok(cookie, 'session cookie');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.ok(!(await page.content()).includes(key), 'the key is not in the page');
  assert.ok(!page.url().includes(key), 'nor in the URL');
});

test('overview: the KPIs are the API numbers, the spike is marked', async () => {
  await open(`/?${WINDOW}`);
  const top = await api(`/v1/top/endpoints?${WINDOW}`);
  assertMoney(await moneyIn(page.locator('[data-kpi=spend]')), top.total.costUsd, 'spend');
  assert.equal(Number(await page.locator('[data-kpi=requests] [data-n]').getAttribute('data-n')), top.total.requests);
  assertMoney(await moneyIn(page.locator('[data-kpi=cost-per-request]')), top.total.costPerRequest, 'cost per request');
  const series = await api(`/v1/timeseries?${WINDOW}&bucket=hour`);
  const bars = await page.locator('svg.chart g.col').count();
  assert.equal(bars, series.buckets.length, 'one column per hour');
  const spike = page.locator('#spike');
  assert.equal(await spike.getAttribute('data-spike-from'), '2026-01-11T14:00:00Z');
  assert.equal(await spike.getAttribute('data-spike-to'), '2026-01-11T17:00:00Z');
  // Hover details come from the little script.
  const col = page.locator('svg.chart g.col').nth(38);
  await col.hover();
  await page.waitForSelector('.tip', { state: 'visible' });
  assert.match(await page.locator('.tip').textContent(), /Jan 11 14:00/);
  assert.match(await page.locator('.tip').textContent(), /summarize\.doc/);
  await shot('overview');
});

test('top endpoints: every row and the total equal /v1/top/endpoints', async () => {
  await open(`/endpoints?${WINDOW}`);
  const top = await api(`/v1/top/endpoints?${WINDOW}`);
  for (const row of top.rows) {
    const tr = page.locator(`#top-table tr[data-key="${row.group.endpointTag}"]`);
    if (row.costUsd === null) {
      assertUnpriced(await tr.locator('[data-col=spend]').textContent(), row.unpriced, row.group.endpointTag);
      continue;
    }
    assertMoney(await moneyIn(tr.locator('[data-col=spend]')), row.costUsd, row.group.endpointTag);
  }
  assertMoney(await moneyIn(page.locator('#top-table [data-col=total]')), top.total.costUsd, 'total');
  await shot('endpoints');
});

test('tenants & users: rows and concentration equal the API, filtered by endpoint', async () => {
  const q = `${WINDOW}&endpointTag=support.reply`;
  await open(`/tenants?${q}`);
  const top = await api(`/v1/top/tenants?${q}`);
  assert.equal(await page.locator('#top-table tbody tr').count(), top.rows.length);
  for (const row of top.rows) {
    const tr = page.locator(`#top-table tr[data-key="${row.group.tenantId}"]`);
    assertMoney(await moneyIn(tr.locator('[data-col=spend]')), row.costUsd, row.group.tenantId);
  }
  const conc = await api(`/v1/concentration?${q}&by=tenantId`);
  const top1 = (await page.locator('[data-conc=top1] .big').textContent()).trim();
  assert.equal(top1, `${conc.top1SharePct.toFixed(1)}%`);
  await shot('tenants');
});

test('prompt versions: current vs baseline cost per request as in the API, regressions first', async () => {
  await open(`/versions?${WINDOW}`);
  const { endpoints } = await api(`/v1/prompt-versions?${WINDOW}`);
  const order = await page.locator('#versions-table tr[data-endpoint]').evaluateAll((rows) => rows.map((r) => r.dataset.endpoint));
  assert.deepEqual(order, endpoints.map((e) => e.endpointTag), 'same order as the API (regressions first)');
  for (const e of endpoints) {
    const tr = page.locator(`#versions-table tr[data-endpoint="${e.endpointTag}"]`);
    if (e.current.costPerRequest !== null) {
      assertMoney(await moneyIn(tr.locator('[data-col=cpr]')), e.current.costPerRequest, e.endpointTag);
    }
  }
  assert.match(await page.locator('#versions-table tr[data-endpoint="support.reply"]').textContent(), /regression/);
  await shot('versions');
});

test('models: spend per model as in the API, unpriced models with the prices check hint', async () => {
  await open(`/models?${WINDOW}`);
  const top = await api(`/v1/top/models?${WINDOW}`);
  for (const row of top.rows) {
    const tr = page.locator(`#top-table tr[data-key="${row.group.provider}/${row.group.model}"]`);
    if (row.costUsd === null) {
      assertUnpriced(await tr.locator('[data-col=spend]').textContent(), row.unpriced, row.group.model);
      continue;
    }
    assertMoney(await moneyIn(tr.locator('[data-col=spend]')), row.costUsd, row.group.model);
  }
  assert.equal(await page.locator('#unpriced tr[data-unpriced="selfhosted/mystery-9b"]').count(), 1);
  assert.match(await page.locator('#unpriced').textContent(), /burnrate prices check/);
  await shot('models');
});

test('requests: filtered list, breakdown equal to the stored cost, search by id', async () => {
  await open(`/requests?${WINDOW}&endpointTag=summarize.doc`);
  const top = await api(`/v1/top/endpoints?${WINDOW}&endpointTag=summarize.doc`);
  assert.equal(await page.locator('details.req').count(), top.total.requests);
  const first = page.locator('details.req').first();
  const id = await first.getAttribute('data-request-id');
  await first.locator('summary').click();
  const { events: [stored] } = await api(`/v1/events?externalRequestId=${id}`);
  assert.equal(Number(await first.locator('[data-breakdown-total]').getAttribute('data-breakdown-total')), stored.costUsd);
  assert.equal(await first.locator('[data-price-entry]').textContent(), stored.priceEntryId);
  await shot('requests');
  await page.fill('input[name=q]', 'sr-20');
  await Promise.all([page.waitForURL(/q=sr-20/), page.click('form.search button[type=submit]')]);
  assert.equal(await page.locator('details.req').count(), 1);
  assert.equal(await page.locator('details.req').getAttribute('data-request-id'), 'sr-20');
});

test('a filter change goes into the URL and changes the numbers', async () => {
  await open(`/endpoints?${WINDOW}`);
  const before = await moneyIn(page.locator('#top-table [data-col=total]'));
  await page.fill('.filters input[name=endpointTag]', 'summarize.doc');
  await Promise.all([page.waitForURL(/endpointTag=summarize\.doc/), page.click('.filters button[type=submit]')]);
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('endpointTag'), 'summarize.doc');
  assert.equal(url.searchParams.get('from'), '2026-01-10T00:00:00Z', 'the window is kept, as RFC 3339');
  const filtered = await api(`/v1/top/endpoints?${WINDOW}&endpointTag=summarize.doc`);
  const after = await moneyIn(page.locator('#top-table [data-col=total]'));
  assert.notEqual(after.exact, before.exact);
  assertMoney(after, filtered.total.costUsd, 'filtered total');
  // The data mode switch is a link; demo data is separate from real.
  await Promise.all([page.waitForURL(/dataMode=demo/), page.click('.seg.mode a[data-mode=demo]')]);
  const demo = await api(`/v1/top/endpoints?${WINDOW}&endpointTag=summarize.doc&dataMode=demo`);
  assert.equal(demo.total.requests, 0);
  assert.equal(await page.locator('[data-empty]').count(), 1, 'an empty view says so');
  await page.click('.chip[data-filter=endpointTag] a');
  await page.waitForURL((u) => !u.search.includes('endpointTag'));
  const demoAll = await api(`/v1/top/endpoints?${WINDOW}&dataMode=demo`);
  assertMoney(await moneyIn(page.locator('#top-table [data-col=total]')), demoAll.total.costUsd, 'demo total');
  await shot('filtered');
});

test('the bill-jump workflow: spike -> endpoint -> who -> deploy in four clicks', async () => {
  await open(`/?${WINDOW}`);
  await Promise.all([page.waitForURL(/\/endpoints\?/), page.click('#spike a.go[data-go=endpoints]')]);
  let url = new URL(page.url());
  assert.equal(url.searchParams.get('from'), '2026-01-11T14:00:00Z');
  assert.equal(url.searchParams.get('to'), '2026-01-11T17:00:00Z');
  const dominant = await page.locator('#top-table tbody tr').first().getAttribute('data-key');
  assert.equal(dominant, 'summarize.doc');
  await Promise.all([page.waitForURL(/\/tenants\?/), page.locator('#top-table tbody tr').first().locator('td.name a').click()]);
  url = new URL(page.url());
  assert.equal(url.searchParams.get('endpointTag'), 'summarize.doc');
  assert.equal(await page.locator('#top-table tbody tr').first().getAttribute('data-key'), 't-gamma');
  await Promise.all([page.waitForURL(/\/versions\?/), page.click('a.go:has-text("Prompt versions")')]);
  url = new URL(page.url());
  assert.equal(url.searchParams.get('endpointTag'), 'summarize.doc');
  assert.equal(url.searchParams.get('from'), '2026-01-11T14:00:00Z', 'the window travels along');
  assert.equal(await page.locator('#versions-table tr[data-endpoint="summarize.doc"]').count(), 1);
});

test('explain: the summary, the total change and the drivers are the API\'s', async () => {
  await open(`/?${WINDOW}`);
  await Promise.all([page.waitForURL(/\/explain\?/), page.click('#spike a.go[data-go=explain]')]);
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('from'), '2026-01-11T14:00:00Z');
  assert.equal(url.searchParams.get('to'), '2026-01-11T17:00:00Z');
  await open(`/explain?${WINDOW}`);
  const e = await api(`/v1/explain?${WINDOW}`);
  assert.equal((await page.locator('[data-summary]').textContent()).trim(), e.summary);
  assert.equal(Number(await page.locator('#explain-totals').getAttribute('data-change-usd')), e.changeUsd);
  const rows = page.locator('#drivers tbody tr');
  assert.equal(await rows.count(), e.drivers.length);
  for (const [i, d] of e.drivers.entries()) {
    const tr = rows.nth(i);
    assert.equal(await tr.getAttribute('data-kind'), d.kind);
    assert.equal(await tr.getAttribute('data-value'), d.value);
    // Signed money: the exact value, and the sign before the usual writing.
    const shown = await moneyIn(tr.locator('[data-col=contribution]'));
    const sign = d.contributionUsd > 0 ? '+' : d.contributionUsd < 0 ? '−' : '';
    assert.equal(shown.exact, d.contributionUsd, `driver ${i}: exact value`);
    assert.equal(shown.text, sign + formatUsd(Math.abs(d.contributionUsd)), `driver ${i}: as written`);
  }
  for (const d of e.dimensions) {
    for (const g of d.groups.slice(0, 10)) {
      const tr = page.locator(`table[data-dimension="${d.dimension}"] tr[data-key="${g.value}"]`);
      assert.equal(Number(await tr.locator('[data-col=change] [data-usd]').getAttribute('data-usd')), g.changeUsd, `${d.dimension} ${g.value}`);
    }
  }
  await shot('explain');
});

// Budgets and alerts look at now: calls stamped in the current periods, with costs the
// client reports (exact spend), then an unknown model burst for the alert rules.
async function seedControl() {
  hook = http.createServer((req, res) => { req.resume(); req.on('end', () => res.end('ok')); });
  await new Promise((resolve) => hook.listen(0, '127.0.0.1', resolve));
  const now = Date.now();
  const call = (id, at, fields) => ({
    externalRequestId: id, provider: 'selfhosted', model: 'race-model', inputTokens: 100, outputTokens: 10,
    status: 'success', timestamp: new Date(at).toISOString(), ...fields,
  });
  const events = [];
  // t-acme: $1.20 over the last 4 days; summarize.doc: $3.00 over the last 5 hours.
  for (let i = 0; i < 24; i++) events.push(call(`acme-${i}`, now - i * 4 * 3_600_000, { endpointTag: 'support.reply', tenantId: 't-acme', costUsd: 0.05 }));
  for (let i = 0; i < 30; i++) events.push(call(`sum-${i}`, now - i * 10 * 60_000, { endpointTag: 'summarize.doc', tenantId: 't-beta', costUsd: 0.1 }));
  for (let i = 0; i < 25; i++) events.push(call(`burst-${i}`, now - i * 1000, { model: 'mystery-now', endpointTag: 'chat.assist', tenantId: 't-gamma' }));
  const stored = await post('/v1/ingest/batch', ingest, events);
  assert.deepEqual(stored.rejected, []);
  for (const b of [
    { name: 'acme monthly', scope: { tenantId: 't-acme' }, period: 'month', timezone: 'Europe/Berlin', limitUsd: 2, thresholds: [50, 80, 95] },
    { name: 'summarize.doc daily', scope: { endpointTag: 'summarize.doc' }, period: 'day', limitUsd: 2.5, action: 'block' },
    { name: 'workspace weekly', period: 'week', limitUsd: 50 },
  ]) await post('/v1/budgets', admin, b);
  await post('/v1/channels', admin, { name: 'ops-hook', type: 'webhook', url: `http://127.0.0.1:${hook.address().port}/hook` });
  await post('/v1/alerts/evaluate', admin, {});
  // Muted, the unpriced alert resolves: one alert in the history.
  await post('/v1/alert-rules', admin, { rules: { unpriced_ratio: { mutedUntil: '2099-01-01T00:00:00Z' } } }, 'PUT');
  await post('/v1/alerts/evaluate', admin, {});
}

test('budgets: every card shows the numbers of /v1/budgets, worst first; the Overview shows the posture', async () => {
  await seedControl();
  await open('/budgets');
  const { budgets } = await api('/v1/budgets');
  assert.equal(await page.locator('.card.budget').count(), budgets.length);
  for (const { budget, status } of budgets) {
    const card = page.locator(`#budget-${budget.id}`);
    assert.equal(await card.getAttribute('data-state'), status.state, budget.name);
    assertMoney(await moneyIn(card.locator('[data-field=spentUsd]')), status.spentUsd, `${budget.name}: spent`);
    assertMoney(await moneyIn(card.locator('[data-field=remainingUsd]')), status.remainingUsd, `${budget.name}: remaining`);
    assert.equal(await card.locator('[data-method]').getAttribute('data-method'), status.forecastMethod);
    assert.equal(await card.locator('svg.gauge').count(), 1);
    assert.equal(await card.locator('svg.burn .b-line').count(), 1, 'spend so far');
  }
  const rank = { exceeded: 2, warning: 1, ok: 0 };
  const states = await page.locator('.card.budget').evaluateAll((cards) => cards.map((c) => c.dataset.state));
  assert.deepEqual(states, [...states].sort((a, b) => rank[b] - rank[a]), 'worst first');
  await shot('budgets');

  await open('/');
  for (const state of ['exceeded', 'warning', 'ok']) {
    const shown = Number(await page.locator(`#budget [data-count=${state}] b`).textContent());
    assert.equal(shown, budgets.filter((b) => b.status.state === state).length, state);
  }
  const worst = page.locator('#budget .posture-row').first();
  const id = Number(await worst.getAttribute('data-budget-id'));
  const first = budgets.find((b) => b.budget.id === id);
  assert.equal(first.status.state, states[0]);
  assertMoney(await moneyIn(worst), first.status.spentUsd, 'worst budget spent');
  await page.locator('#budget').screenshot({ path: path.join(SHOTS, 'overview-budget-posture.png') });
  await Promise.all([page.waitForURL(/\/budgets/), worst.locator('a').first().click()]);
  assert.equal(new URL(page.url()).hash, `#budget-${id}`);
});

test('alerts: firing first with the evidence and drivers of /v1/alerts, the history, the explain link', async () => {
  await open('/alerts');
  const { alerts } = await api('/v1/alerts');
  const firing = alerts.filter((a) => a.state === 'firing');
  assert.ok(firing.length > 0);
  assert.equal(await page.locator('.card.alert').count(), firing.length);
  const budgetAlert = firing.find((a) => a.rule === 'budget');
  const card = page.locator(`#alert-${budgetAlert.id}`);
  assert.equal((await card.locator('h2').textContent()).trim(), budgetAlert.title);
  assertMoney(await moneyIn(card.locator('tr[data-key="status.spentUsd"]')), budgetAlert.evidence.status.spentUsd, 'budget alert: spent');
  assert.equal(await card.locator('[data-channel=ops-hook][data-delivered=true]').count(), 1);

  const resolved = alerts.find((a) => a.rule === 'unpriced_ratio');
  assert.equal(resolved.state, 'resolved');
  const row = page.locator(`#alert-${resolved.id}`);
  await row.locator('summary').click();
  const unpriced = (await row.locator('tr[data-key=unpricedRequests] td.num').textContent()).trim();
  assert.equal(unpriced, String(resolved.evidence.unpricedRequests));
  const driver = row.locator('tr[data-dimension=model][data-value=mystery-now]');
  assert.equal(Number(await driver.locator('[data-share]').getAttribute('data-share')), resolved.drivers[0].sharePct);
  assert.equal(await row.locator('[data-channel=ops-hook][data-delivered=true]').count(), 2, 'firing and resolved delivered');
  assert.equal(await page.locator('#rules tr[data-rule]').count(), 14, 'every rule, bill_mismatch and the abuse rules included');
  await shot('alerts');

  await Promise.all([page.waitForURL(/\/explain\?/), row.locator('a[data-go=explain]').click()]);
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('from'), resolved.evidence.window.from);
  assert.equal(url.searchParams.get('to'), resolved.evidence.window.to);
  assert.equal(url.searchParams.get('baselineFrom'), resolved.evidence.baseline.from);
  assert.equal(url.searchParams.get('baselineTo'), resolved.evidence.baseline.to);
  assert.equal(await page.locator('[data-summary]').count(), 1, 'the explanation opens');
});

test('tenant page: a tenant name opens its page, whose margin and breakdowns are the API\'s', async () => {
  const top = await api(`/v1/top/tenants?${WINDOW}`);
  const tenant = top.rows[0].group.tenantId;
  await post('/v1/plans/definitions/pro', admin, { priceUsd: 100 }, 'PUT');
  await post(`/v1/plans/tenants/${tenant}`, admin, { plan: 'pro' }, 'PUT');
  await post('/v1/revenue', admin, { entries: [{ tenantId: tenant, type: 'oneOff', date: '2026-01-11', amountUsd: 5 }] });
  await open(`/tenants?${WINDOW}`);
  await Promise.all([
    page.waitForURL(/\/tenant\?/),
    page.click(`#top-table tr[data-key="${tenant}"] td.name a`),
  ]);
  assert.equal(new URL(page.url()).searchParams.get('tenantId'), tenant);
  const margin = await api(`/v1/margin?${WINDOW}&tenantId=${tenant}`);
  const row = margin.tenants.find((t) => t.tenantId === tenant);
  assertMoney(await moneyIn(page.locator('[data-kpi=revenue]')), row.revenueUsd, 'revenue');
  assertMoney(await moneyIn(page.locator('[data-kpi=cost]')), row.costUsd, 'AI cost');
  assertMoney(await moneyIn(page.locator('[data-kpi=margin]')), row.marginUsd, 'margin');
  const endpoints = await api(`/v1/top/endpoints?${WINDOW}&tenantId=${tenant}`);
  assert.equal(await page.locator('#endpoints tbody tr').count(), endpoints.rows.length);
  for (const r of endpoints.rows) {
    const tr = page.locator(`#endpoints tr[data-key="${r.group.endpointTag}"]`);
    assertMoney(await moneyIn(tr.locator('[data-col=spend]')), r.costUsd, r.group.endpointTag);
  }
  const models = await api(`/v1/top/models?${WINDOW}&tenantId=${tenant}`);
  assert.equal(await page.locator('#models tbody tr').count(), models.rows.length);
  // The most expensive request first: the largest cost among the tenant's events.
  const { events } = await api(`/v1/events?${WINDOW}&tenantId=${tenant}&limit=1000`);
  const costs = events.map((e) => e.costUsd).filter((c) => c !== null).sort((a, b) => b - a);
  assertMoney(await moneyIn(page.locator('#top-requests tbody tr').first()), costs[0], 'top request');
  assert.equal(await page.locator('#spend-over-time svg').count(), 1);
  await shot('tenant');
});

test('bill page: each provider day billed against attributed, as /v1/reconciliation has them', async () => {
  // A bill for the window's two days of provider acme (the fixture's calls), the second
  // day short of what burnrate saw, and a model burnrate never saw.
  const csv = 'date,provider,model,amountUsd\n2026-01-10,acme,m1,1.25\n2026-01-11,acme,,0.5\n2026-01-11,acme,never-seen,0.75\n';
  const r = await fetch(`${base}/v1/reconciliation/import`, {
    method: 'POST', headers: { 'X-API-Key': admin, 'Content-Type': 'text/csv' }, body: csv,
  });
  assert.equal(r.status, 200, await r.clone().text());
  const rec = await api(`/v1/reconciliation?${WINDOW}`);
  assert.equal(rec.days.length, 2);
  await open(`/reconciliation?${WINDOW}`);
  for (const d of rec.days) {
    const row = page.locator(`#bill-table tr[data-key="${d.day}/${d.provider}"]`);
    assertMoney(await moneyIn(row.locator('[data-col=billed]')), d.billedUsd, `${d.day} billed`);
    assertMoney(await moneyIn(row.locator('[data-col=attributed]')), d.attributedUsd, `${d.day} attributed`);
    assertMoney(await moneyIn(row.locator('[data-col=difference]')), d.differenceUsd, `${d.day} difference`);
  }
  // The CSV's own amounts, added by hand: 1.25 and 0.50 + 0.75.
  assert.equal(toNanos(rec.days.find((d) => d.day === '2026-01-10').billedUsd), 1_250_000_000n);
  assert.equal(toNanos(rec.days.find((d) => d.day === '2026-01-11').billedUsd), 1_250_000_000n);
  assert.equal(await page.locator('#bill-table tr.sub[data-key="2026-01-11/acme/never-seen"]').count(), 1);
  await shot('bill');
});

test('at 800 px wide every nav link and Log out is visible inside the viewport', async () => {
  await page.setViewportSize({ width: 800, height: 900 });
  try {
    await open(`/?${WINDOW}`);
    const items = [...(await page.locator('nav.tabs a').all()), page.locator('header form button')];
    assert.equal(items.length, 12, 'eleven pages and Log out');
    for (const item of items) {
      const label = (await item.innerText()).trim();
      assert.ok(await item.isVisible(), `${label} is visible`);
      const box = await item.boundingBox();
      assert.ok(box.x >= 0 && box.x + box.width <= 800, `${label} lies inside the 800 px viewport: x ${box.x}..${box.x + box.width}`);
      // Nothing covers it and nothing clips it: the point at its centre is the item itself.
      const hit = await page.evaluate(([x, y]) => document.elementFromPoint(x, y)?.closest('a, button')?.textContent.trim(), [box.x + box.width / 2, box.y + box.height / 2]);
      assert.equal(hit, label, `${label} is what a click at its centre reaches`);
    }
    const headerWidth = await page.evaluate(() => document.querySelector('header.top').scrollWidth);
    assert.ok(headerWidth <= 800, `the header does not overflow (scrollWidth ${headerWidth})`);
    await shot('nav-800px');
  } finally {
    await page.setViewportSize({ width: 1440, height: 900 });
  }
});

test('sortable columns: a heading click orders the rows by that column, again for the other way', async () => {
  await open(`/endpoints?${WINDOW}`);
  const top = await api(`/v1/top/endpoints?${WINDOW}`);
  const requests = page.locator('#top-table thead th', { hasText: /^Requests$/ });
  const shown = async () => page.locator('#top-table tbody tr').evaluateAll(
    (rows) => rows.map((r) => [r.getAttribute('data-key'), Number(r.cells[5].getAttribute('data-v'))]));
  // Expected orders from the API's rows, ties kept in the server's order (by spend).
  const byRequests = (dir) => top.rows
    .map((r, i) => [r.group.endpointTag, r.requests, i])
    .sort((a, b) => (dir * (a[1] - b[1])) || a[2] - b[2])
    .map(([k, n]) => [k, n]);
  await requests.click();
  assert.equal(await requests.getAttribute('aria-sort'), 'descending');
  assert.deepEqual(await shown(), byRequests(-1), 'most requests first');
  await requests.click();
  assert.equal(await requests.getAttribute('aria-sort'), 'ascending');
  const asc = await shown();
  // Ascending after a descending pass: ties keep the order they had then.
  assert.deepEqual(asc.map(([, n]) => n), byRequests(1).map(([, n]) => n), 'fewest requests first');
  assert.deepEqual([...asc.map(([k]) => k)].sort(), top.rows.map((r) => r.group.endpointTag).sort());
  // Sorting by the name column sorts by text.
  const name = page.locator('#top-table thead th', { hasText: /^Endpoint$/ });
  await name.click();
  const names = await page.locator('#top-table tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-key')));
  assert.deepEqual(names, [...names].sort((a, b) => b.localeCompare(a)), 'names, Z to A first');
  await shot('endpoints-sorted');
  // Models by spend: the exact amounts of the money cells, dearest first, unpriced last.
  await open(`/models?${WINDOW}`);
  await page.locator('#top-table thead th', { hasText: /^Spend$/ }).click();
  const spend = await page.locator('#top-table tbody tr').evaluateAll((rows) => rows.map((r) => {
    const usd = r.cells[2].querySelector('[data-usd]');
    return usd ? Number(usd.getAttribute('data-usd')) : null;
  }));
  const models = await api(`/v1/top/models?${WINDOW}`);
  const want = models.rows.map((r) => r.costUsd).filter((c) => c !== null).sort((a, b) => b - a);
  assert.deepEqual(spend, [...want, ...models.rows.filter((r) => r.costUsd === null).map(() => null)]);
});

test('tables page past 100 rows: 130 tenants are 100 on the first page and 30 on the next, as the API orders them', async () => {
  // 130 tenants on 2026-01-20, tenant p-i costing (i + 1) cents: a day of its own.
  const events = Array.from({ length: 130 }, (_, i) => ({
    externalRequestId: `page-${i}`, provider: 'openai', model: 'gpt-4.1', endpointTag: 'paging.check',
    tenantId: `p-${String(i).padStart(3, '0')}`, inputTokens: 10, outputTokens: 1, status: 'success',
    costUsd: (i + 1) / 100, timestamp: new Date(Date.UTC(2026, 0, 20, 12, 0, i)).toISOString(),
  }));
  await post('/v1/ingest/batch', ingest, events);
  const day = 'from=2026-01-20T00:00:00Z&to=2026-01-21T00:00:00Z';
  await open(`/tenants?${day}`);
  const keys = () => page.locator('#top-table tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-key')));
  const first = await keys();
  assert.equal(first.length, 100);
  // Dearest first: p-129 down to p-030.
  assert.deepEqual(first, Array.from({ length: 100 }, (_, i) => `p-${String(129 - i).padStart(3, '0')}`));
  assert.equal(await page.locator('#prev-page').count(), 0);
  await Promise.all([page.waitForURL(/page=2/), page.click('#next-page')]);
  const second = await keys();
  assert.deepEqual(second, Array.from({ length: 30 }, (_, i) => `p-${String(29 - i).padStart(3, '0')}`));
  assert.equal(await page.locator('#next-page').count(), 0, 'the last page');
  const api2 = await api(`/v1/top/tenants?${day}&limit=200`);
  assert.deepEqual([...first, ...second], api2.rows.map((r) => r.group.tenantId), 'the API\'s order');
  assertMoney(await moneyIn(page.locator('#top-table tr[data-key="p-000"] [data-col=spend]')), 0.01, 'p-000');
  await shot('tenants-page-2');
  await Promise.all([page.waitForURL((u) => !u.searchParams.has('page')), page.click('#prev-page')]);
  assert.equal((await keys())[0], 'p-129');
});

test('date picker: calendar presets set an absolute window, day fields fill the typed fields', async () => {
  await open(`/endpoints?${WINDOW}`);
  await page.click('#picker summary');
  const now = Date.now();
  await Promise.all([page.waitForURL(/from=/), page.click('#picker a[data-preset="Yesterday"]')]);
  const today = Math.floor(now / 86400000) * 86400000;
  const iso = (ms) => new Date(ms).toISOString().replace('.000Z', 'Z');
  const win = page.locator('[data-window-from]');
  assert.equal(await win.getAttribute('data-window-from'), iso(today - 86400000));
  assert.equal(await win.getAttribute('data-window-to'), iso(today));
  // Days picked: the 10th to the 11th, both included.
  await page.click('#picker summary');
  await page.fill('#picker input[data-fill=from]', '2026-01-10');
  await page.fill('#picker input[data-fill=to]', '2026-01-11');
  assert.equal(await page.inputValue('input[name=from]'), '2026-01-10 00:00');
  assert.equal(await page.inputValue('input[name=to]'), '2026-01-12 00:00');
  await shot('picker');
  await page.click('#picker summary');
  await Promise.all([page.waitForLoadState('load'), page.click('.filters button[type=submit]')]);
  await page.waitForSelector('[data-window-from="2026-01-10T00:00:00Z"]');
  assert.equal(await win.getAttribute('data-window-to'), '2026-01-12T00:00:00Z');
  // The same numbers as the window typed in the URL.
  const top = await api(`/v1/top/endpoints?${WINDOW}`);
  assertMoney(await moneyIn(page.locator('#top-table [data-col=total]')), top.total.costUsd, 'total');
});

test('alerts: an admin session acknowledges and mutes from the page; a read session has no buttons, a forged post is refused', async () => {
  await open('/alerts');
  assert.equal(await page.locator('[data-actions]').count(), 0, 'read session: read-only');
  // Log out, then in with another key (the login page sends a live session on at once).
  const login = async (k) => {
    await Promise.all([page.waitForURL(/\/login/), page.click('header form button')]);
    await page.goto(`${base}/login?next=/alerts`);
    await page.fill('#key', k);
    await Promise.all([page.waitForURL(/\/alerts/), page.click('button[type=submit]')]);
  };
  await login(admin);
  try {
    const { alerts } = await api('/v1/alerts');
    const alert = alerts.find((a) => a.state === 'firing');
    const card = page.locator(`#alert-${alert.id}`);
    // A forged post: the admin's session cookie without the page's token, from this
    // origin or another one: refused, nothing changes.
    const [session] = (await context.cookies()).filter((c) => c.name === 'burnrate_session');
    for (const origin of [base, 'https://evil.example']) {
      const forged = await fetch(`${base}/alerts/ack`, {
        method: 'POST', redirect: 'manual', body: `id=${alert.id}`,
        headers: { Cookie: `burnrate_session=${session.value}`, Origin: origin, 'Content-Type': 'application/x-www-form-urlencoded' },
      });
      assert.equal(forged.status, 403, origin);
    }
    assert.equal((await api('/v1/alerts')).alerts.find((a) => a.id === alert.id).acknowledgedAt, null);

    const before = Date.now();
    await Promise.all([page.waitForURL(new RegExp(`#alert-${alert.id}$`)), card.locator('button[data-ack]').click()]);
    await page.waitForSelector(`#alert-${alert.id} [data-acknowledged]`);
    const acked = (await api('/v1/alerts')).alerts.find((a) => a.id === alert.id);
    const at = Date.parse(acked.acknowledgedAt);
    assert.ok(at >= before - 1000 && at <= Date.now(), `acknowledged now: ${acked.acknowledgedAt}`);
    assert.equal(await card.locator('button[data-ack]').count(), 0, 'acknowledged once');

    await card.locator('select[name=minutes]').selectOption('60');
    const muteAt = Date.now();
    await Promise.all([page.waitForURL(/#rules$/), card.locator('button[data-mute]').click()]);
    const rules = await api('/v1/alert-rules');
    const until = Date.parse(rules.rules[alert.rule].mutedUntil);
    assert.ok(until >= muteAt - 1000 + 3600000 && until <= Date.now() + 3600000, `muted for an hour: ${rules.rules[alert.rule].mutedUntil}`);
    assert.match(await page.locator(`#rules tr[data-rule="${alert.rule}"]`).textContent(), /until/);
    await shot('alerts-admin');
  } finally {
    await login(key);
  }
  assert.equal(await page.locator('[data-actions]').count(), 0, 'read again');
});

test('no script or style was blocked and no script failed', () => {
  assert.deepEqual(consoleErrors, []);
});

test('logout ends the session', async () => {
  await open(`/?${WINDOW}`);
  await Promise.all([page.waitForURL(/\/login/), page.click('header form button')]);
  await page.goto(`${base}/models`);
  assert.match(page.url(), /\/login/);
});
