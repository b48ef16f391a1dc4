#!/usr/bin/env node
// ternd's two web pages (the console at / and the ICE self-test at /icetest)
// in Debian's real headless Chromium, as a person would use them.
//
//   node console.js BASE_URL ADMIN_TOKEN OUT_DIR [WRONG_PASSWORD]
//   node console.js --icetest-only BASE_URL ADMIN_TOKEN
//
// 1. GET / without the cookie must land on /login; the token goes into the
//    form's password field and the browser comes back to /.
// 2. The console's numbers: #allocations and the relayed bits/s must show
//    traffic (a client relays while this runs), sampled for a few seconds;
//    then a screenshot (OUT_DIR/console.png).
// 3. A session is killed from the table: the first row's kill button, the
//    confirm() dialog accepted; its row must go.
// 4. /icetest runs by itself; window.icetestResult when #done appears, and a
//    screenshot (OUT_DIR/icetest.png).
// 5. With WRONG_PASSWORD in the password field, "Run" again: the result of
//    that second run.
//
// --icetest-only: sign in, load /icetest, report its result and its error
// banner (a ternd with no secret to mint credentials with answers 503).
//
// Prints one line "RESULT {json}" with what it saw (the Python test judges);
// exits 0 when every step ran, 2 on a harness error (no browser, timeout...).
// Chromium flags as in relay.js (its header says why loopback works).
// TERN_TRUST_SPKI (base64 SHA-256 of a certificate's public key) makes
// Chromium accept that one self-signed certificate: a turns: URL's TLS
// connection is verified like an https one, and fails (701) without it.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
let profile = null;

function result(obj, code) {
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
  process.stdout.write('RESULT ' + JSON.stringify(obj) + '\n');
  process.exit(code);
}

async function main() {
  const only = process.argv[2] === '--icetest-only';
  const [base, token, outDir, wrongPassword] = process.argv.slice(only ? 3 : 2);
  if (!base || !token || (!outDir && !only)) {
    process.stderr.write('usage: console.js BASE_URL ADMIN_TOKEN OUT_DIR [WRONG_PASSWORD]\n');
    process.exit(2);
  }
  if (!fs.existsSync(CHROMIUM)) result({ error: 'no browser at ' + CHROMIUM }, 2);
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    result({ error: 'playwright-core not installed (npm ci in test/interop/chromium): ' + e.message }, 2);
  }
  if (outDir) fs.mkdirSync(outDir, { recursive: true });
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tern-chromium-'));
  const out = { steps: [], logs: [] };
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 20000,
      viewport: { width: 1280, height: 800 },
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--allow-loopback-in-peer-connection',
      ].concat(process.env.TERN_TRUST_SPKI
        ? ['--ignore-certificate-errors-spki-list=' + process.env.TERN_TRUST_SPKI] : []),
    });
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(15000);
    page.on('console', (m) => out.logs.push(m.type() + ': ' + m.text()));
    page.on('pageerror', (e) => out.logs.push('pageerror: ' + e.message));
    page.on('dialog', (d) => { out.dialog = d.message(); d.accept(); });

    // 1. login
    await page.goto(base + '/');
    out.loginUrl = page.url();
    out.steps.push('login page');
    const field = page.locator('input[type=password]').first();
    await field.fill(token);
    await Promise.all([page.waitForURL((u) => u.pathname === '/'), field.press('Enter')]);
    out.afterLogin = page.url();
    out.steps.push('logged in');

    if (only) {
      await page.goto(base + '/icetest');
      await page.waitForSelector('#done', { state: 'attached', timeout: 45000 });
      out.icetest = await page.evaluate(() => window.icetestResult);
      out.banner = await page.evaluate(() => { const e = document.getElementById('error'); return e.hidden ? null : e.textContent; });
      out.rows = await page.locator('#urls-table tbody tr').count();
      await context.close();
      context = null;
      result(out, 0);
    }

    // 2. live numbers while traffic flows
    await page.waitForFunction(() => Number(document.getElementById('allocations').dataset.value) > 0 &&
      Number(document.getElementById('bps-to-peer').dataset.value) > 0, null, { timeout: 20000 });
    const read = () => page.evaluate(() => {
      const v = (id) => Number(document.getElementById(id).dataset.value);
      return { allocations: v('allocations'), requests: v('rate-requests'), toPeer: v('bps-to-peer'),
               toClient: v('bps-to-client'), rows: document.querySelectorAll('#sessions-table tbody tr').length,
               redis: document.getElementById('redis').textContent, draining: document.getElementById('draining').textContent,
               bytes: Object.fromEntries([...document.querySelectorAll('#sessions-table tbody tr')]
                 .map((tr) => [tr.dataset.id, tr.cells[10].textContent])) };
    });
    out.samples = [];
    for (let i = 0; i < 4; i++) { out.samples.push(await read()); await page.waitForTimeout(1000); }
    out.steps.push('numbers');
    await page.screenshot({ path: path.join(outDir, 'console.png') });

    // 3. kill the first session from the table
    const button = page.locator('#sessions-table tbody button[data-kill-id]').first();
    out.killed = await button.getAttribute('data-kill-id');
    await button.click();
    await page.waitForFunction((id) => !document.querySelector('#sessions-table tbody tr[data-id="' + id + '"]') &&
      document.querySelector('#sessions-table tbody') !== null, out.killed, { timeout: 10000 });
    out.killMessage = await page.textContent('#message');
    // and stays gone once the page has fetched the list again
    await page.waitForTimeout(2000);
    out.killedRowAfterRefresh = await page.locator('#sessions-table tbody tr[data-id="' + out.killed + '"]').count();
    out.rowsAfterKill = await page.locator('#sessions-table tbody tr').count();
    // the filter box: a string no row has leaves the table empty
    await page.fill('#filter', 'no-such-session-zzz');
    out.rowsFiltered = await page.locator('#sessions-table tbody tr').count();
    await page.fill('#filter', '');
    out.steps.push('killed');

    // 4. the ICE self-test with the minted credentials
    await page.goto(base + '/icetest');
    await page.waitForSelector('#done', { state: 'attached', timeout: 45000 });
    out.icetest = await page.evaluate(() => window.icetestResult);
    await page.screenshot({ path: path.join(outDir, 'icetest.png') });
    out.steps.push('icetest');

    // 5. the same with a wrong password
    if (wrongPassword) {
      await page.fill('#password', wrongPassword);
      await page.click('#run');
      await page.waitForSelector('#done[data-run="2"]', { state: 'attached', timeout: 30000 });
      out.icetestWrong = await page.evaluate(() => window.icetestResult);
      out.steps.push('icetest wrong password');
    }
    await context.close();
    context = null;
    result(out, 0);
  } catch (e) {
    out.error = String(e && e.stack || e);
    if (context) await context.close().catch(() => {});
    result(out, 2);
  }
}

main();
