#!/usr/bin/env node
// WebRTC through a TURN server in Debian's real headless Chromium.
//
//   node relay.js TURN_URL USERNAME CREDENTIAL ok|fail [MESSAGES]
//
// Two RTCPeerConnections in one page, both with iceServers = [the TURN URL]
// and iceTransportPolicy "relay", so the only candidates either side may use
// are relayed ones.  Offer and answer are exchanged in the page after each
// side has finished gathering (no trickle), a DataChannel carries MESSAGES
// messages each way, and getStats() must show a selected candidate pair whose
// local and remote candidates are both of type "relay".
//
// expect "ok":   all of the above must hold.
// expect "fail": (a wrong credential) gathering must complete with zero relay
//                candidates, and the page must not connect.
//
// Prints one line "RESULT {json}" and exits 0 when the outcome is the expected
// one, 1 when it is not, 2 on a harness error (no browser, timeout...).
//
// Loopback (found with Chromium 156 on Debian 12, coturn as the server):
// a TURN URL on 127.0.0.1 works, and so do its 127.0.0.1 relay candidates,
// with no extra switch: relay candidates are not filtered like loopback host
// candidates, and with iceTransportPolicy "relay" the peers only ever talk to
// the TURN server.  Chromium binds its socket towards the TURN server on one
// of the machine's enumerated networks, so it needs one non-loopback
// interface up (eth0 here).  In a network namespace with only lo up, gathering
// never completes without --allow-loopback-in-peer-connection, and with it
// one side got its relay candidate but gathering still did not complete in
// 20 s: do not run this in a lo-only namespace.  The switch is kept (harmless
// with eth0 up).  No STUN servers, no mDNS are involved.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

let profile = null;  // the temporary --user-data-dir, removed before exiting

function result(obj, code) {
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
  process.stdout.write('RESULT ' + JSON.stringify(obj) + '\n');
  process.exit(code);
}

async function main() {
  const [url, username, credential, expect, nStr] = process.argv.slice(2);
  if (!url || username === undefined || credential === undefined || !['ok', 'fail'].includes(expect)) {
    process.stderr.write('usage: relay.js TURN_URL USERNAME CREDENTIAL ok|fail [MESSAGES]\n');
    process.exit(2);
  }
  const messages = parseInt(nStr || '20', 10);
  if (!fs.existsSync(CHROMIUM)) result({ error: 'no browser at ' + CHROMIUM }, 2);

  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    result({ error: 'playwright-core not installed (npm ci in test/interop/chromium): ' + e.message }, 2);
  }

  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tern-chromium-'));
  let context;
  try {
    // launchPersistentContext gives --user-data-dir=profile; the other flags
    // keep Chromium off the network (the machine's network is closed).
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 20000,
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--allow-loopback-in-peer-connection',
      ],
    });
    const page = context.pages()[0] || await context.newPage();
    const logs = [];
    page.on('console', (m) => logs.push(m.text()));
    await page.goto('about:blank');
    const out = await page.evaluate(inPage, { url, username, credential, expect, messages });
    out.expect = expect;
    const good = expect === 'ok'
      ? out.connected && out.localType === 'relay' && out.remoteType === 'relay' &&
        out.aToB === messages && out.bToA === messages && out.relayCandidates.a > 0 &&
        out.relayCandidates.b > 0
      : out.relayCandidates.a === 0 && out.relayCandidates.b === 0 && !out.connected;
    out.pass = !!good;
    await context.close();
    context = null;
    result(out, good ? 0 : 1);
  } catch (e) {
    if (context) await context.close().catch(() => {});
    result({ error: String(e && e.stack || e) }, 2);
  }
}

// Runs inside the page.
async function inPage({ url, username, credential, expect, messages }) {
  const out = {
    relayCandidates: { a: 0, b: 0 }, otherCandidates: { a: 0, b: 0 }, candidates: { a: [], b: [] },
    errors: [], gathering: {}, connected: false, aToB: 0, bToA: 0,
  };
  const cfg = { iceServers: [{ urls: url, username, credential }], iceTransportPolicy: 'relay' };
  const a = new RTCPeerConnection(cfg);
  const b = new RTCPeerConnection(cfg);
  const timeout = (ms, what) => new Promise((_, rej) => setTimeout(() => rej(new Error('timeout: ' + what)), ms));

  for (const [name, pc] of [['a', a], ['b', b]]) {
    pc.addEventListener('icecandidate', (e) => {
      if (!e.candidate || !e.candidate.candidate) return;
      out.candidates[name].push(e.candidate.candidate);
      if (e.candidate.type === 'relay') out.relayCandidates[name]++;
      else out.otherCandidates[name]++;
    });
    pc.addEventListener('icecandidateerror', (e) => {
      out.errors.push({ pc: name, code: e.errorCode, text: e.errorText, url: e.url });
    });
  }
  const gathered = (pc, name) => new Promise((res) => {
    if (pc.iceGatheringState === 'complete') return res();
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') { out.gathering[name] = 'complete'; res(); }
    });
  });

  const chA = a.createDataChannel('tern', { ordered: true });
  const chBp = new Promise((res) => b.addEventListener('datachannel', (e) => res(e.channel)));

  try {
    // No trickle: each side's description carries all its candidates.
    await a.setLocalDescription(await a.createOffer());
    await Promise.race([gathered(a, 'a'), timeout(20000, 'gathering a')]);
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription(await b.createAnswer());
    await Promise.race([gathered(b, 'b'), timeout(20000, 'gathering b')]);
    await a.setRemoteDescription(b.localDescription);

    if (expect === 'fail') {
      // Give ICE a moment: nothing may connect without relay candidates.
      await new Promise((r) => setTimeout(r, 1500));
      out.connected = a.connectionState === 'connected' || b.connectionState === 'connected';
      out.state = { a: a.connectionState, b: b.connectionState };
      return out;
    }

    const chB = await Promise.race([chBp, timeout(15000, 'datachannel at b')]);
    const open = (ch) => ch.readyState === 'open' ? Promise.resolve()
      : new Promise((res) => ch.addEventListener('open', () => res(), { once: true }));
    await Promise.race([Promise.all([open(chA), open(chB)]), timeout(15000, 'datachannel open')]);
    // A channel can be open at one end a moment before that end's
    // connectionState turns "connected": wait for the event, do not sample.
    const connected = (pc) => pc.connectionState === 'connected' ? Promise.resolve()
      : new Promise((res) => pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState === 'connected') res();
      }));
    await Promise.race([Promise.all([connected(a), connected(b)]), timeout(10000, 'connectionState connected')]);
    out.connected = a.connectionState === 'connected' && b.connectionState === 'connected';

    const payload = (dir, i) => dir + ':' + i + ':' + 'x'.repeat(i * 7 % 300);
    const collect = (ch, dir, counter) => new Promise((res) => {
      let next = 0;
      ch.addEventListener('message', (e) => {
        if (e.data === payload(dir, next)) { next++; out[counter] = next; }
        else out.errors.push({ badMessage: String(e.data).slice(0, 40), expected: dir + ':' + next });
        if (next === messages) res();
      });
    });
    const gotAtB = collect(chB, 'a2b', 'aToB');
    const gotAtA = collect(chA, 'b2a', 'bToA');
    for (let i = 0; i < messages; i++) { chA.send(payload('a2b', i)); chB.send(payload('b2a', i)); }
    await Promise.race([Promise.all([gotAtB, gotAtA]), timeout(15000, 'messages')]);

    // The pair in use, as the browser reports it.
    const stats = await a.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
    if (pair) {
      const l = stats.get(pair.localCandidateId);
      const r = stats.get(pair.remoteCandidateId);
      out.localType = l && l.candidateType;
      out.remoteType = r && r.candidateType;
      out.localAddress = l && ((l.address || l.ip) + ':' + l.port);
      out.remoteAddress = r && ((r.address || r.ip) + ':' + r.port);
      out.relayProtocol = l && l.relayProtocol;
      out.pairState = pair.state;
    }
  } catch (e) {
    out.errors.push({ exception: String(e) });
    out.state = { a: a.connectionState, b: b.connectionState };
  } finally {
    a.close();
    b.close();
  }
  return out;
}

main();
