// Real-browser test of ngx-websockify: Debian's Chromium, driven by playwright-core, runs
// noVNC against a real VNC server (x11vnc on Xvfb) through nginx + the module, as started
// by `scripts/demo start --tls --tls-target`. Run it through scripts/test-browser.
//
// For each scenario: open the page, wait for noVNC's connected state, check which
// subprotocol the WebSocket got, read noVNC's canvas and require the colours drawn on the
// remote desktop (root window, xterm background), click into the xterm and type a line,
// then require that line in the file the xterm's `cat` appends to (i.e. the VNC server
// received the keys). The noVNC 1.7 client then closes (noVNC's disconnect(), or the socket with a code) and the server must
// answer the close: clean, same code.
//
// Environment: DEMO_DIR (the demo's state dir, holds demo.env), SCREENSHOT (path to save a
// screenshot of the first scenario), CHROMIUM (/usr/bin/chromium), ONLY (substring filter).
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const t0 = Date.now();
const demoDir = process.env.DEMO_DIR;
if (!demoDir) throw new Error('DEMO_DIR is not set');
const env = Object.fromEntries(
  fs.readFileSync(path.join(demoDir, 'demo.env'), 'utf8').split('\n')
    .filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

const hex = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
const ROOT = hex(env.DEMO_ROOT_COLOR);
const XTERM = hex(env.DEMO_XTERM_BG);
const REMOTE_W = 1024, REMOTE_H = 640;   // DEMO_GEOMETRY default
const XTERM_SPOT = [400, 250];           // inside the xterm at +60+60, 72x16 cells of 10x20

const vncPage = 'vnc.html?autoconnect=1&path=websockify&resize=scale&logging=warn';
const scenarios = [
  { name: 'ws:// noVNC 1.3 vnc.html, no subprotocol', base: env.DEMO_BASE, page: vncPage,
    ui: true, expectProtocol: '', screenshot: true },
  { name: 'ws:// noVNC 1.7 RFB, no subprotocol', base: env.DEMO_BASE,
    page: 'test/rfb.html?path=websockify', expectProtocol: '' },
  { name: "ws:// noVNC 1.7 RFB, wsProtocols ['binary']", base: env.DEMO_BASE,
    page: 'test/rfb.html?path=websockify&protocols=binary', expectProtocol: 'binary', closeCode: 4001 },
  { name: 'wss:// noVNC 1.3 vnc.html, no subprotocol', base: env.DEMO_TLS_BASE, page: vncPage,
    ui: true, expectProtocol: '' },
  { name: "wss:// noVNC 1.7 RFB, wsProtocols ['binary']", base: env.DEMO_TLS_BASE,
    page: 'test/rfb.html?path=websockify&protocols=binary', expectProtocol: 'binary', closeCode: 1000 },
  // nginx -> TLS (certificate verified, client certificate shown) -> stunnel -> x11vnc
  { name: 'wss:// noVNC 1.7 RFB, TLS to the VNC server behind stunnel', base: env.DEMO_TLS_TARGET_BASE,
    page: 'test/rfb.html?path=websockify', expectProtocol: '', closeCode: 1000, viaStunnel: true },
  // nginx logs in to the VNC server (scripts/demo --vnc-password): noVNC has no password.
  { name: 'ws:// noVNC 1.3 vnc.html without a password: nginx logs in to x11vnc (VncAuth)', base: env.DEMO_RFB_BASE,
    page: `vnc.html?autoconnect=1&path=websockify%3Ftoken%3D${env.DEMO_RFB_TOKEN}&resize=scale&logging=warn`,
    ui: true, expectProtocol: '' },
  { name: 'ws:// noVNC 1.7 RFB without a password: nginx logs in to Xvnc (VeNCrypt X509Vnc)', base: env.DEMO_RFB_BASE,
    page: `test/rfb.html?path=websockify-x509%3Ftoken%3D${env.DEMO_RFB_TOKEN}`, expectProtocol: '', closeCode: 1000 },
  { name: 'ws:// noVNC 1.7 RFB, view-only: the keys typed never reach the desktop', base: env.DEMO_RFB_BASE,
    page: `test/rfb.html?path=websockify-view%3Ftoken%3D${env.DEMO_RFB_TOKEN}`, expectProtocol: '', closeCode: 1000,
    viewOnly: true },
  // websockify_record (scripts/demo --record): the session typed into is played back by
  // player/ in Chromium, and its last frame matches the live one.
  { name: 'ws:// noVNC 1.7 RFB, recorded, then played back by the player', base: env.DEMO_RECORD_BASE,
    page: 'test/rfb.html?path=websockify', expectProtocol: '', closeCode: 1000, playback: true },
].filter((s) => !process.env.ONLY || s.name.includes(process.env.ONLY));

// Records every WebSocket the page opens: offered protocols, negotiated one, close event.
const spy = () => {
  const Orig = window.WebSocket;
  window.__ws = [];
  window.__wsObjects = [];
  // A plain function returning the real WebSocket (noVNC 1.7 checks the object's own
  // prototype for the WebSocket API, so a subclass would not do).
  function SpyWebSocket(url, protocols) {
    const ws = protocols === undefined ? new Orig(url) : new Orig(url, protocols);
    const rec = { url: String(url), offered: protocols === undefined ? null : protocols,
      open: false, protocol: null, close: null };
    window.__ws.push(rec);
    window.__wsObjects.push(ws);
    ws.addEventListener('open', () => { rec.open = true; rec.protocol = ws.protocol; });
    ws.addEventListener('close', (e) => { rec.close = { code: e.code, clean: e.wasClean, reason: e.reason }; });
    return ws;
  }
  SpyWebSocket.prototype = Orig.prototype;
  for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) SpyWebSocket[k] = Orig[k];
  window.WebSocket = SpyWebSocket;
};

// The canvas as 16x16-pixel block averages (r, g, b per block): frames compared this way
// ignore scaling and single-pixel noise.
const blocks = (sel) => {
  const c = document.querySelector(sel);
  if (!c || !c.width) return null;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const bw = Math.ceil(c.width / 16), bh = Math.ceil(c.height / 16);
  const sum = new Float64Array(bw * bh * 4);
  for (let y = 0; y < c.height; y++) {
    for (let x = 0; x < c.width; x++) {
      const i = (y * c.width + x) * 4, b = (Math.floor(y / 16) * bw + Math.floor(x / 16)) * 4;
      sum[b] += d[i]; sum[b + 1] += d[i + 1]; sum[b + 2] += d[i + 2]; sum[b + 3] += 1;
    }
  }
  const out = [];
  for (let b = 0; b < sum.length; b += 4) out.push(sum[b] / sum[b + 3], sum[b + 1] / sum[b + 3], sum[b + 2] / sum[b + 3]);
  return { w: c.width, h: c.height, out };
};

// Blocks whose average differs by more than 8 in a channel, as a fraction.
const differing = (a, b) => {
  let n = 0;
  for (let i = 0; i < a.length; i += 3) {
    if ([0, 1, 2].some((k) => Math.abs(a[i + k] - b[i + k]) > 8)) n++;
  }
  return n / (a.length / 3);
};

// Counts canvas pixels of the given colours (+-2 per channel).
const countColours = ([sel, colours]) => {
  const c = document.querySelector(sel);
  if (!c || !c.width) return null;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const counts = colours.map(() => 0);
  for (let i = 0; i < d.length; i += 4) {
    for (let k = 0; k < colours.length; k++) {
      const [r, g, b] = colours[k];
      if (Math.abs(d[i] - r) <= 2 && Math.abs(d[i + 1] - g) <= 2 && Math.abs(d[i + 2] - b) <= 2) counts[k]++;
    }
  }
  return { w: c.width, h: c.height, counts };
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, ms, fn) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last && last.ok !== false) return last;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ': ' + JSON.stringify(last) : ''}`);
    await sleep(200);
  }
}

async function runScenario(browser, s, idx) {
  if (!s.base) throw new Error('no base URL (was the demo started with --tls?)');
  const context = await browser.newContext({
    viewport: { width: 1024, height: 640 }, ignoreHTTPSErrors: true,
  });
  const page = await context.newPage();
  const log = [];
  page.on('console', (m) => {
    const noise = /package\.json|404|preloaded/.test(m.text()); // noVNC 1.3 asks for its package.json
    if (!noise && (m.type() === 'error' || m.type() === 'warning')) log.push(`console.${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  try {
    await page.addInitScript(spy);
    // stunnel logs each connection it accepts: this scenario's must be among them.
    const stunnelLog = path.join(env.DEMO_LOGS, 'stunnel.log');
    const accepted = () => (fs.readFileSync(stunnelLog, 'utf8').match(/Service \[vnc\] accepted connection/g) || []).length;
    const acceptedBefore = s.viaStunnel ? accepted() : 0;
    const url = `${s.base}/${s.page}`;
    await page.goto(url, { timeout: 15000 });
    let closeInfo = '';
    const canvasSel = s.ui ? '#noVNC_container canvas' : '#screen canvas';

    // 1. noVNC reaches its connected state.
    if (s.ui) {
      await page.waitForSelector('html.noVNC_connected', { state: 'attached', timeout: 15000 });
    } else {
      await until('rfbState == connected', 15000, () => page.evaluate(
        () => ({ ok: window.rfbState === 'connected', state: window.rfbState, error: window.rfbError })));
      const err = await page.evaluate(() => window.rfbError);
      if (err) throw new Error(`noVNC: ${err}`);
    }

    // 2. The WebSocket: right scheme, offered vs negotiated subprotocol.
    const ws = await page.evaluate(() => window.__ws);
    if (ws.length !== 1) throw new Error(`expected 1 WebSocket, page opened ${ws.length}: ${JSON.stringify(ws)}`);
    const scheme = s.base.startsWith('https:') ? 'wss:' : 'ws:';
    if (!ws[0].url.startsWith(scheme)) throw new Error(`WebSocket URL ${ws[0].url} is not ${scheme}`);
    if (ws[0].protocol !== s.expectProtocol) {
      throw new Error(`negotiated subprotocol ${JSON.stringify(ws[0].protocol)}, expected ${JSON.stringify(s.expectProtocol)} (offered ${JSON.stringify(ws[0].offered)})`);
    }

    // 3. The remote desktop is on the canvas: its size, the root colour and the xterm.
    const px = await until('the remote desktop on the canvas', 15000, async () => {
      const r = await page.evaluate(countColours, [canvasSel, [ROOT, XTERM]]);
      return r && { ...r, ok: r.w === REMOTE_W && r.h === REMOTE_H && r.counts[0] > 50000 && r.counts[1] > 50000 };
    });

    // 4. Keys typed in the browser reach the VNC server: the xterm's `cat` writes them.
    const token = `ngxws${idx}x${Math.random().toString(36).slice(2, 10)}`;
    const box = await page.locator(canvasSel).boundingBox();
    const x = box.x + XTERM_SPOT[0] * box.width / px.w;
    const y = box.y + XTERM_SPOT[1] * box.height / px.h;
    await page.mouse.move(x, y);
    await page.mouse.click(x, y);
    await sleep(200);
    await page.keyboard.type(`typed through nginx ${token}`, { delay: 15 });
    await page.keyboard.press('Enter');
    if (s.viewOnly) {
      // Nothing typed may arrive: the gateway drops input. A session that passed keys
      // would have them in the file well within these seconds (the others take < 1 s).
      await sleep(3000);
      if (fs.readFileSync(env.DEMO_TYPED_FILE, 'utf8').includes(token)) {
        throw new Error(`view-only session: "${token}" reached the VNC server`);
      }
    } else {
      await until(`"${token}" in ${env.DEMO_TYPED_FILE}`, 15000,
        () => ({ ok: fs.readFileSync(env.DEMO_TYPED_FILE, 'utf8').includes(token) }));
    }
    if (s.viaStunnel && accepted() <= acceptedBefore) {
      throw new Error(`stunnel accepted no connection for this session (${stunnelLog})`);
    }

    let live = null;
    if (s.playback) {
      await sleep(1500);   // the typed line drawn and the screen still
      live = await page.evaluate(blocks, canvasSel);
      await page.screenshot({ path: path.join(demoDir, 'live.png') });
    }

    if (s.screenshot && process.env.SCREENSHOT) {
      // Pointer off the xterm, noVNC's side bar opened, then the picture.
      await page.mouse.move(box.x + box.width - 5, box.y + box.height - 5);
      await page.click('#noVNC_control_bar_handle').catch(() => {});
      await sleep(1000);
      await page.screenshot({ path: process.env.SCREENSHOT });
    }

    // 5. A client-side close is answered with the same code, cleanly. noVNC's own
    //    disconnect() sends a close frame without a code (the browser then reports 1005);
    //    with a code, the server must echo it.
    if (!s.ui) {
      const code = s.closeCode;
      if (code) await page.evaluate((c) => window.__wsObjects[0].close(c, 'test close'), code);
      else await page.evaluate(() => window.rfb.disconnect());
      await until('rfbState == disconnected', 10000, () => page.evaluate(() => ({ ok: window.rfbState === 'disconnected' })));
      const closed = await until('the close event', 5000, () => page.evaluate(() => ({ ok: !!window.__ws[0].close, close: window.__ws[0].close })));
      const want = code || 1005;
      if (closed.close.code !== want || !closed.close.clean) {
        throw new Error(`close not answered as expected (want code ${want}, clean): ${JSON.stringify(closed.close)}`);
      }
      closeInfo = ` close=${closed.close.code}/clean`;
    }
    if (s.playback) closeInfo += await playBack(context, s, live);
    return `${ws[0].url} protocol=${JSON.stringify(ws[0].protocol)} canvas=${px.w}x${px.h} root/xterm px=${px.counts.join('/')}${closeInfo}`;
  } catch (e) {
    if (log.length) e.message += '\n    ' + log.slice(-15).join('\n    ');
    try {
      const shot = path.join(demoDir, `failed-${idx}.png`);
      await page.screenshot({ path: shot });
      e.message += `\n    screenshot: ${shot}`;
    } catch { /* page gone */ }
    throw e;
  } finally {
    await context.close();
  }
}

// The newest recording, complete (its size stable), played to its end by player/: the
// last frame must be the live one.
async function playBack(context, s, live) {
  const dir = env.DEMO_RECORDINGS;
  const newest = () => fs.readdirSync(dir).filter((f) => f.endsWith('.rec'))
    .map((f) => ({ f, t: fs.statSync(path.join(dir, f)).mtimeMs })).sort((a, b) => b.t - a.t)[0];
  const rec = await until('a recording', 10000, () => newest() && { ok: true, ...newest() });
  let size = -1;
  await until('the recording complete', 10000, () => {
    const now = fs.statSync(path.join(dir, rec.f)).size;
    const ok = now === size && now > 0;
    size = now;
    return { ok, size };
  });
  const page = await context.newPage();
  await page.goto(`${s.base}/player/?file=/recordings/${rec.f}&lib=/novnc17&autoplay=0`, { timeout: 15000 });
  await until('the player loaded', 15000, () => page.evaluate(
    () => ({ ok: window.player && window.player.state === 'paused', state: window.player && window.player.state, error: window.player && window.player.error })));
  await page.evaluate(() => window.player.seek(window.player.duration));
  const played = await until('the played-back frame', 15000, async () => {
    const st = await page.evaluate(() => window.player.state);
    const b = await page.evaluate(blocks, '#screen canvas');
    return b && { ok: st === 'ended' && b.w === live.w && b.h === live.h && differing(b.out, live.out) < 0.02, st, w: b.w, h: b.h, diff: differing(b.out, live.out) };
  });
  await page.screenshot({ path: path.join(demoDir, 'played.png') });
  await page.close();
  return ` recording=${rec.f} (${size} bytes) played=${played.w}x${played.h} differing-blocks=${(played.diff * 100).toFixed(2)}%`;
}

const overall = setTimeout(() => { console.log('browser test: overall timeout (240 s)'); process.exit(1); }, 240000);
let passed = 0, failed = 0;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  timeout: 60000,
  // Playwright gives each launch a fresh --user-data-dir of its own (under TMPDIR).
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--ignore-certificate-errors'],
});
console.log(`# ${browser.browserType().name()} ${browser.version()}, launched in ${Date.now() - t0} ms`);
try {
  for (const [i, s] of scenarios.entries()) {
    const t = Date.now();
    try {
      const info = await runScenario(browser, s, i + 1);
      passed++;
      console.log(`ok ${i + 1} - ${s.name} (${((Date.now() - t) / 1000).toFixed(1)} s)\n    ${info}`);
    } catch (e) {
      failed++;
      console.log(`not ok ${i + 1} - ${s.name} (${((Date.now() - t) / 1000).toFixed(1)} s)\n    ${e.message}`);
    }
  }
} finally {
  await browser.close();
  clearTimeout(overall);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
