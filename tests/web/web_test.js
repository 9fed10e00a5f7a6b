// SPDX-License-Identifier: MIT
// Browser test of the web page of espstm-bridge --http: headless Debian chromium driven by
// playwright-core. Starts espstm-bridge with the simulated STM32F103 holding an application
// image (its banner at 57600 baud, the bridge's user baud 115200), logs in, changes the user
// baud to 57600 and sees it applied (status + the banner readable through a raw TCP client on
// the bridge port after pressing Reset), flashes a 16 KiB image from the page's upload form
// (progress bar while it runs, then done), aborts a 64 KiB flash with Cancel (state failed at
// once, fewer bytes written than the image), and checks that a wrong password is refused.
// Screenshots go to $ESPSTM_BUILD/web-artifacts.
//
// playwright-core is pinned to 1.61.1 (package-lock.json): the last release whose "engines"
// accepts Node 18 (1.62 and later want Node 20), so Debian 12's own nodejs 18 and npm 9 run
// this test. Chosen over Debian's python3-selenium + chromium-driver because it keeps this
// test unchanged (playwright waits for page state with waitForFunction, reads HTTP status
// codes of navigations and sends Basic credentials, which selenium 4.8 cannot without CDP
// work-arounds). The cost: `npm ci` needs the npm registry once (tests/web/run), and a
// future Debian chromium could drop a DevTools call this release uses; then move to
// selenium with chromium-driver, which Debian keeps in step with chromium.
'use strict';
const { chromium } = require('playwright-core');
const { spawn } = require('child_process');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');
const crypto = require('crypto');

const ROOT = path.resolve(__dirname, '..', '..');
const BUILD = path.resolve(ROOT, process.env.ESPSTM_BUILD || 'build');
const BRIDGE = path.join(BUILD, 'espstm-bridge');
const ART = path.join(BUILD, 'web-artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PASS = 'web-' + crypto.randomBytes(6).toString('hex');

let passed = 0, failed = 0;
const results = [];
async function test(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}: ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`);
  }
}
function assert(c, msg) { if (!c) throw new Error(msg); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function request(port, method, p, { user, pass, body, headers } = {}) {
  return new Promise((resolve, reject) => {
    const h = Object.assign({}, headers || {});
    if (user !== undefined) h.Authorization = 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
    if (body !== undefined) h['Content-Type'] = 'application/json';
    const rq = http.request({ host: '127.0.0.1', port, method, path: p, headers: h }, (res) => {
      let d = '';
      res.on('data', (c) => (d += c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: d }));
    });
    rq.on('error', reject);
    if (body !== undefined) rq.write(typeof body === 'string' ? body : JSON.stringify(body));
    rq.end();
  });
}

function mkflash(file) {
  const img = Buffer.alloc(128 * 1024, 0xff);
  img.writeUInt32LE(0x20004000, 0);
  img.writeUInt32LE(0x08000131, 4);
  crypto.randomBytes(4088).copy(img, 8);
  fs.writeFileSync(file, img);
}

async function main() {
  fs.mkdirSync(ART, { recursive: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'espstm-web-'));
  const flash = path.join(dir, 'f103.bin');
  mkflash(flash);
  fs.writeFileSync(path.join(dir, 'pw'), PASS + '\n', { mode: 0o600 });
  let log = '';
  const br = spawn(BRIDGE, ['--listen', '127.0.0.1:0', '--target', 'sim:stm32f103', '--flash', flash,
    '--app-baud', '57600', '--http', '127.0.0.1:0', '--password-file', path.join(dir, 'pw'), '--no-key'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  br.stdout.on('data', (d) => (log += d));
  br.stderr.on('data', (d) => (log += d));
  let browser;
  try {
    const rfcPort = +(await until(() => (log.match(/listening on 127\.0\.0\.1:(\d+)/) || [])[1], 10000, 'bridge port'));
    const httpPort = +(await until(() => (log.match(/http on 127\.0\.0\.1:(\d+)/) || [])[1], 10000, 'http port'));
    const base = `http://127.0.0.1:${httpPort}`;
    // A fresh --user-data-dir per browser: playwright wants it as launchPersistentContext's
    // first argument (it refuses the flag in args).
    const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'];
    const open = (profile, password) => chromium.launchPersistentContext(path.join(dir, profile), {
      executablePath: CHROMIUM, headless: true, args: FLAGS,
      httpCredentials: { username: 'admin', password },
    });

    await test('page and API refuse requests without credentials', async () => {
      const r1 = await request(httpPort, 'GET', '/');
      assert(r1.status === 401 && /Basic/.test(r1.headers['www-authenticate'] || ''), `GET / -> ${r1.status}`);
      const r2 = await request(httpPort, 'POST', '/api/targets/0/reset', { headers: { 'X-Espstm-Request': '1' } });
      assert(r2.status === 401, `POST reset -> ${r2.status}`);
    });

    const ctx = await open('profile-good', PASS);
    browser = ctx;
    const page = ctx.pages()[0] || await ctx.newPage();
    await test('log in: the page loads and shows the status', async () => {
      const resp = await page.goto(base + '/');
      assert(resp.status() === 200, `status ${resp.status()}`);
      await page.waitForFunction(() => /115200 8N1/.test(document.getElementById('s-uart').textContent), null, { timeout: 10000 });
      assert((await page.inputValue('#baud')) === '115200', 'baud field');
      await page.screenshot({ path: path.join(ART, '1-logged-in.png'), fullPage: true });
    });

    await test('an invalid baud is refused with a per-field error', async () => {
      await page.fill('#baud', '12');
      await page.click('#save');
      await page.waitForFunction(() => /300\.\.4000000/.test(document.getElementById('e-baud').textContent), null, { timeout: 5000 });
      await page.screenshot({ path: path.join(ART, '2-invalid-baud.png'), fullPage: true });
    });

    await test('change the user baud to 57600 and see it applied', async () => {
      await page.fill('#baud', '57600');
      await page.click('#save');
      await page.waitForFunction(() => /Settings saved/.test(document.getElementById('msg').textContent), null, { timeout: 5000 });
      await page.waitForFunction(() => /^57600 8N1/.test(document.getElementById('s-uart').textContent), null, { timeout: 5000 });
      const st = await request(httpPort, 'GET', '/api/status', { user: 'admin', pass: PASS });
      const j = JSON.parse(st.body);
      assert(j.targets[0].uart.baud === 57600 && j.targets[0].user_baud === 57600, `status ${st.body}`);
      assert(/settings applied: user baud 57600/.test(log), 'bridge log line');
      const saved = JSON.parse(fs.readFileSync(flash + '.settings.json', 'utf8'));
      assert(saved.targets[0].baud === 57600, 'settings file');
      await page.screenshot({ path: path.join(ART, '3-baud-57600.png'), fullPage: true });
    });

    await test('allowed clients: a bad list gets a per-field error, a good one is saved and applied', async () => {
      assert((await page.inputValue('#allow')) === '', 'allow field empty by default');
      await page.fill('#allow', '10.0.0.300');
      await page.click('#save');
      await page.waitForFunction(() => /entry 1 '10\.0\.0\.300'.*out of range/.test(document.getElementById('e-allow').textContent), null, { timeout: 5000 });
      await page.screenshot({ path: path.join(ART, '3b-invalid-allow.png'), fullPage: true });
      await page.fill('#allow', ' 127.0.0.1, 10.0.0.0/8 ');
      await page.click('#save');
      await page.waitForFunction(() => /Settings saved/.test(document.getElementById('msg').textContent), null, { timeout: 5000 });
      assert((await page.inputValue('#allow')) === '127.0.0.1,10.0.0.0/8', 'field shows the stored list');
      const saved = JSON.parse(fs.readFileSync(flash + '.settings.json', 'utf8'));
      assert(saved.allow === '127.0.0.1,10.0.0.0/8', `settings file allow ${JSON.stringify(saved.allow)}`);
      assert(/clients allowed: 127\.0\.0\.1\/32,10\.0\.0\.0\/8 \(settings\)/.test(log), 'bridge log line');
    });

    await test('press Reset and see the application banner on the bridge port', async () => {
      const sock = net.connect(rfcPort, '127.0.0.1');
      let rx = '';
      sock.on('data', (d) => (rx += d.toString('latin1')));
      await new Promise((res, rej) => { sock.once('connect', res); sock.once('error', rej); });
      await sleep(300);
      rx = '';
      await page.click('#act-reset');
      await page.waitForFunction(() => /Done: reset/.test(document.getElementById('msg').textContent), null, { timeout: 5000 });
      await until(() => /stm32sim app crc32=[0-9a-f]{8} len=\d+\r\n/.test(rx), 5000, `banner (got ${JSON.stringify(rx)})`);
      await page.waitForFunction(() => /connected/.test(document.getElementById('s-client').textContent), null, { timeout: 5000 });
      await page.screenshot({ path: path.join(ART, '4-after-reset.png'), fullPage: true });
      sock.destroy();
      fs.writeFileSync(path.join(ART, 'banner.txt'), rx);
    });

    await test('flash an image from the page: progress bar, then done', async () => {
      // 16 KiB .bin with a vector table (the simulated app prints its banner after GO)
      const img = Buffer.alloc(16 * 1024);
      crypto.randomBytes(img.length).copy(img);
      img.writeUInt32LE(0x20004000, 0);
      img.writeUInt32LE(0x08000131, 4);
      const file = path.join(dir, 'app.bin');
      fs.writeFileSync(file, img);
      await page.setInputFiles('#fl-file', file);
      await page.fill('#fl-addr', '0x08000000');
      await page.click('#fl-start');
      // progress while it runs (the page polls GET /api/targets/0/flash)
      await page.waitForFunction(() => {
        const b = document.getElementById('fl-bar');
        return b.value > 0 && b.value < 100 && /writing|verifying/.test(document.getElementById('fl-state').textContent);
      }, null, { timeout: 20000, polling: 50 });
      await page.screenshot({ path: path.join(ART, '5-flash-progress.png'), fullPage: true });
      await page.waitForFunction(() => document.getElementById('fl-state').dataset.state === 'done', null, { timeout: 60000 });
      assert(/Flash done: app\.bin/.test(await page.textContent('#msg')), 'message');
      assert((await page.getAttribute('#fl-bar', 'value')) === '100' || (await page.evaluate(() => document.getElementById('fl-bar').value)) === 100, 'bar at 100');
      const st = JSON.parse((await request(httpPort, 'GET', '/api/targets/0/flash', { user: 'admin', pass: PASS })).body);
      assert(st.state === 'done' && st.bytes_verified === img.length && st.go === true, `GET flash ${JSON.stringify(st)}`);
      await page.screenshot({ path: path.join(ART, '6-flash-done.png'), fullPage: true });
    });

    await test('Cancel aborts a running flash at once (DELETE /api/targets/0/flash)', async () => {
      // 64 KiB: about 15 s of wire time, so the run is surely still writing when Cancel is
      // pressed
      const img = crypto.randomBytes(64 * 1024);
      const file = path.join(dir, 'big.bin');
      fs.writeFileSync(file, img);
      await page.setInputFiles('#fl-file', file);
      await page.click('#fl-start');
      await page.waitForFunction(() => /writing|verifying/.test(document.getElementById('fl-state').textContent),
        null, { timeout: 20000, polling: 50 });
      assert(await page.isVisible('#fl-cancel'), 'Cancel button not shown while the flash runs');
      const t0 = Date.now();
      await page.click('#fl-cancel');
      await page.waitForFunction(() => document.getElementById('fl-state').dataset.state === 'failed', null, { timeout: 5000 });
      const took = Date.now() - t0;
      const st = JSON.parse((await request(httpPort, 'GET', '/api/targets/0/flash', { user: 'admin', pass: PASS })).body);
      assert(st.state === 'failed' && /aborted/.test(st.error || ''), `GET flash after Cancel ${JSON.stringify(st)}`);
      assert(st.bytes_written < img.length, `bytes_written ${st.bytes_written}: the run was not cut short`);
      await until(async () => !(await page.isDisabled('#fl-start')), 5000, 'the Flash button enabled again');
      assert(!(await page.isVisible('#fl-cancel')), 'Cancel still shown after the abort');
      assert(/abort/i.test(await page.textContent('#msg')), `message: ${await page.textContent('#msg')}`);
      console.log(`# Cancel -> state failed in ${took} ms, ${st.bytes_written} of ${img.length} bytes written`);
      await page.screenshot({ path: path.join(ART, '6b-flash-cancelled.png'), fullPage: true });
    });

    await test('a wrong password is refused', async () => {
      const bad = await open('profile-bad', PASS + 'x');
      const p2 = bad.pages()[0] || await bad.newPage();
      const resp = await p2.goto(base + '/');
      assert(resp.status() === 401, `page status ${resp.status()}`);
      await p2.screenshot({ path: path.join(ART, '7-wrong-password.png') });
      const r = await request(httpPort, 'PUT', '/api/settings', { user: 'admin', pass: 'wrong', body: { targets: [{ baud: 9600 }] }, headers: { 'X-Espstm-Request': '1' } });
      assert(r.status === 401 || r.status === 429, `PUT with wrong password -> ${r.status}`);
      const st = JSON.parse((await request(httpPort, 'GET', '/api/settings', { user: 'admin', pass: PASS })).body || '{}');
      assert(!st.targets || st.targets[0].baud === 57600, 'settings changed by a refused request');
      await bad.close();
    });

  } finally {
    if (browser) await browser.close().catch(() => {});
    br.kill('SIGTERM');
    await new Promise((r) => { br.once('exit', r); setTimeout(r, 3000); });
    fs.writeFileSync(path.join(ART, 'bridge.log'), log);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { failed++; console.log(`not ok - harness: ${e && e.stack || e}`); })
  .finally(() => {
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
  });
