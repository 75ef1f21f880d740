// production.js drives the wxpaysim emulator configured with an operator's
// own keys, as `tollgate sandbox` is in the production tests, with
// wechatpay-axios-plugin configured from the same files (the merchant's
// apiclient_key.pem and serial, the APIv3 key, WeChat Pay's pub_key.pem and
// PUB_KEY_ID_, or platform certificates downloaded from /v3/certificates) and
// never the emulator's built-in test keys.
//
// Without TOLLGATE_ORDERS it places a JSAPI order and an H5 order itself
// and pays them as a payer would (the JSAPI payment sheet, the H5 page). The
// JSAPI paySign comes from tollgate's code (TOLLGATE_URL): the plugin's own
// RSA verification must accept it and refuse it once tampered with.
// Notifications arrive over https and are verified and decrypted with the
// plugin's primitives. In platform certificate mode the certificate rotates
// between the two orders: the plugin must refuse the new serial until it
// downloads the certificates again.
//
// With TOLLGATE_ORDERS (JSON: {"openid", "jsapi": <answer>, "h5": <answer>},
// the answers of a `tollgate serve --mode production` to POST
// /v1/payments/orders) it checks and pays those orders the same way;
// tollgate receives their notifications.
//
// Environment: WXPAYSIM_URL, MCH_ID, APPID, MERCHANT_KEY_FILE,
// MERCHANT_CERT_FILE, MERCHANT_SERIAL, APIV3_KEY_FILE, and
// WECHATPAY_PUBLIC_KEY_FILE with WECHATPAY_PUBLIC_KEY_ID for public key mode
// (without them: platform certificate mode); without TOLLGATE_ORDERS also
// TOLLGATE_URL (GET /jsapi-params?prepay_id=), TLS_CERT_FILE and
// TLS_KEY_FILE (the https notify receiver's, from a CA the emulator
// trusts). Exit status 0 and a last line "INTEROP OK" mean every check
// passed.
'use strict';

const https = require('node:https');
const crypto = require('node:crypto');
const { readFileSync } = require('node:fs');
const assert = require('node:assert/strict');
const { Wechatpay, Rsa, Aes: { AesGcm }, Formatter } = require('wechatpay-axios-plugin');

function env(name) {
  const v = process.env[name];
  assert.ok(v, `${name} must be set`);
  return v;
}

const base = env('WXPAYSIM_URL').replace(/\/$/, '');
const mchid = env('MCH_ID');
const appid = env('APPID');
const merchantKey = readFileSync(env('MERCHANT_KEY_FILE'));
const merchantPublicKey = Rsa.from(readFileSync(env('MERCHANT_CERT_FILE')), Rsa.KEY_TYPE_PUBLIC);
const merchantSerial = env('MERCHANT_SERIAL');
const apiv3Key = readFileSync(env('APIV3_KEY_FILE'), 'utf8').trim();
const publicKeyID = process.env.WECHATPAY_PUBLIC_KEY_ID || '';
const certMode = publicKeyID === '';
const run = `${Date.now()}`.slice(-8);
const openid = `oIOP${run}payer`;

function log(...args) { console.log('production:', ...args); }

// wxpay is the plugin's client and platform its table of WeChat Pay keys,
// serial -> key, which its response verifier reads: the public key (public
// key mode) or the downloaded certificates. The plugin (0.9.6) replaces the
// certs of the config it is given by that table (Decorator.jsonBased), so
// the config's certs is the table the verifier checks answers with.
const config = {
  baseURL: `${base}/`, mchid, serial: merchantSerial, privateKey: merchantKey,
  certs: certMode ? { any: undefined } : { [publicKeyID]: readFileSync(env('WECHATPAY_PUBLIC_KEY_FILE')) },
};
const wxpay = new Wechatpay(config);
const platform = config.certs;

// downloadCertificates is the plugin's certificate downloader (bin/cli/cert.js):
// GET /v3/certificates with a response transformer that decrypts each
// certificate with the APIv3 key into the verifier's table before the
// plugin's verifier checks the answer's signature. The listed set replaces
// the table: a certificate no longer listed is dropped.
async function downloadCertificates() {
  const listed = [];
  const injector = (body) => {
    const data = JSON.parse(body).data || [];
    for (const k of Object.keys(platform)) { delete platform[k]; }
    data.forEach(({ serial_no: serialNo, encrypt_certificate: { nonce, associated_data: aad, ciphertext } }) => {
      const pem = AesGcm.decrypt(ciphertext, apiv3Key, nonce, aad);
      assert.equal(new crypto.X509Certificate(pem).serialNumber.toUpperCase(), serialNo, 'a certificate listed under its own serial');
      platform[serialNo] = Rsa.from(pem, Rsa.KEY_TYPE_PUBLIC);
      listed.push(serialNo);
    });
    return body;
  };
  const { data: { data } } = await wxpay.v3.certificates.get({
    transformResponse: [injector, ...wxpay.client.v3.defaults.transformResponse],
  });
  assert.deepEqual(data.map((c) => c.serial_no), listed);
  return listed;
}

// startReceiver is the merchant's https notify endpoint. It verifies each
// notification's signature (re-downloading the certificates once when it
// names an unknown serial, as a client in certificate mode must), refuses
// SIGNTEST probes, decrypts the resource with the APIv3 key and
// acknowledges.
function startReceiver() {
  const waiters = new Map();
  const seen = new Map();
  const deliver = (no, what) => {
    seen.set(no, what);
    const w = waiters.get(no);
    if (w) { w(what); }
  };
  const verify = async (h, body) => {
    const serial = h['wechatpay-serial'];
    const sig = h['wechatpay-signature'] || '';
    if (sig.startsWith('WECHATPAY/SIGNTEST/')) { return false; }
    if (Math.abs(Formatter.timestamp() - Number(h['wechatpay-timestamp'])) > 300) { return false; }
    if (!platform[serial] && certMode) {
      log(`notification signed by unknown serial ${serial}: downloading the certificates again`);
      await downloadCertificates();
    }
    return Boolean(platform[serial]) && Rsa.verify(Formatter.response(h['wechatpay-timestamp'], h['wechatpay-nonce'], body), sig, platform[serial]);
  };
  const server = https.createServer({ key: readFileSync(env('TLS_KEY_FILE')), cert: readFileSync(env('TLS_CERT_FILE')) }, (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (req.method === 'HEAD') { res.writeHead(200); res.end(); return; }
      try {
        if (req.method !== 'POST' || req.url !== '/notify/v3' || !await verify(req.headers, body)) {
          res.writeHead(401, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ code: 'FAIL', message: 'bad signature' }));
          return;
        }
        const { event_type: event, resource: r } = JSON.parse(body);
        const plain = JSON.parse(AesGcm.decrypt(r.ciphertext, apiv3Key, r.nonce, r.associated_data));
        deliver(plain.out_trade_no, { event, serial: req.headers['wechatpay-serial'], resource: plain });
        res.writeHead(204); res.end();
      } catch (err) {
        log('receiver error', err);
        res.writeHead(500); res.end();
      }
    });
  });
  const wait = (no) => new Promise((resolve, reject) => {
    if (seen.has(no)) { resolve(seen.get(no)); return; }
    const timer = setTimeout(() => reject(new Error(`no notification for ${no}`)), 10000);
    waiters.set(no, (v) => { clearTimeout(timer); resolve(v); });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    server, wait, url: `https://127.0.0.1:${server.address().port}/notify/v3`,
  })));
}

// postJSON posts to the emulator's simulation endpoints (the payer's side).
async function postJSON(path, body) {
  const res = await fetch(`${base}${path}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

const query = (client, no) => client.v3.pay.transactions.outTradeNo.$out_trade_no$.get({ params: { mchid }, out_trade_no: no });

// checkSheet checks tollgate's payment sheet parameters for prepayID with
// the plugin's own RSA primitives: the paySign verifies with the merchant
// certificate and equals the plugin's signature of the same message, and
// every tampered copy is refused by Rsa.verify and by the emulator's sheet,
// which pays nothing.
async function checkSheet(params, prepayID, no) {
  assert.deepEqual(Object.keys(params).sort(), ['appId', 'nonceStr', 'package', 'paySign', 'signType', 'timeStamp']);
  assert.equal(params.appId, appid);
  assert.equal(params.package, `prepay_id=${prepayID}`);
  assert.equal(params.signType, 'RSA');
  assert.ok(Math.abs(Formatter.timestamp() - Number(params.timeStamp)) < 300, 'timeStamp is now, in seconds');
  const message = (p) => Formatter.joinedByLineFeed(p.appId, p.timeStamp, p.nonceStr, p.package);
  assert.equal(Rsa.verify(message(params), params.paySign, merchantPublicKey), true, "tollgate's paySign verifies with the merchant certificate");
  assert.equal(Rsa.sign(message(params), Rsa.from(merchantKey, Rsa.KEY_TYPE_PRIVATE)), params.paySign,
    'the plugin signs the same message to the same paySign (RSA-SHA256 PKCS#1 v1.5)');

  const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const tampered = [
    ['another prepay_id', { ...params, package: `prepay_id=${prepayID}0` }],
    ['another timeStamp', { ...params, timeStamp: String(Number(params.timeStamp) + 1) }],
    ['another appId', { ...params, appId: `${appid}x` }],
    ['another nonceStr', { ...params, nonceStr: `${params.nonceStr.slice(1)}A` }],
    ['a flipped signature byte', { ...params, paySign: flipByte(params.paySign) }],
    ['signed by another key', { ...params, paySign: Rsa.sign(message(params), other.privateKey) }],
  ];
  for (const [what, p] of tampered) {
    assert.equal(Rsa.verify(message(p), p.paySign, merchantPublicKey), false, `Rsa.verify accepted paySign with ${what}`);
    const sheet = await postJSON('/sim/jsapi/pay', p);
    assert.equal(sheet.status, 400, `payment sheet with ${what}: ${JSON.stringify(sheet.body)}`);
    assert.equal(sheet.body.err_msg, 'get_brand_wcpay_request:fail');
  }
  const q = (await query(wxpay, no)).data;
  assert.equal(q.trade_state, 'NOTPAY', 'nothing paid by a tampered sheet');
  assert.equal(q.trade_type, 'JSAPI');
  log(`tollgate's paySign accepted by Rsa.verify and equal to the plugin's own; ${tampered.length} tamperings refused by Rsa.verify and the sheet`);
}

// paySheet is the payer confirming the sheet; a second payment is refused.
async function paySheet(params) {
  const sheet = await postJSON('/sim/jsapi/pay', params);
  assert.equal(sheet.status, 200, JSON.stringify(sheet.body));
  assert.equal(sheet.body.err_msg, 'get_brand_wcpay_request:ok');
  const again = await postJSON('/sim/jsapi/pay', params);
  assert.equal(again.status, 400, 'a paid order cannot be paid again');
}

// payH5Page opens an h5_url as a phone's browser does, checks the amount
// shown and presses Pay; the page sends the payer back to redirect_url.
async function payH5Page(h5URL, yuan) {
  const page = new URL(h5URL);
  assert.equal(page.origin, new URL(base).origin);
  const prepayID = page.searchParams.get('prepay_id');
  assert.ok(prepayID);
  const back = 'https://merchant.example/checkout/done';
  const shown = await fetch(`${h5URL}&redirect_url=${encodeURIComponent(back)}`);
  assert.equal(shown.status, 200);
  assert.ok((await shown.text()).includes(`¥${yuan}`), `the H5 page shows ¥${yuan}`);
  const form = new URLSearchParams({ prepay_id: prepayID, redirect_url: back });
  const pay = await fetch(`${page.origin}${page.pathname}`, { method: 'POST', body: form, redirect: 'manual' });
  assert.equal(pay.status, 302);
  assert.equal(pay.headers.get('location'), back);
}

// jsapi: the plugin places a JSAPI order, tollgate's code signs its sheet
// (TOLLGATE_URL), the payer pays, the notification reaches the plugin's
// receiver.
async function jsapi(rcv) {
  const no = `IOPJ${run}`;
  const { data: { prepay_id: prepayID } } = await wxpay.v3.pay.transactions.jsapi.post({
    appid, mchid, description: 'interop JSAPI', out_trade_no: no, notify_url: rcv.url,
    amount: { total: 2600, currency: 'CNY' }, payer: { openid },
  });
  assert.match(prepayID, /^[0-9A-Za-z_-]{1,64}$/);
  await assert.rejects(
    wxpay.v3.pay.transactions.jsapi.post({
      appid, mchid, description: 'no openid', out_trade_no: `${no}X`, notify_url: rcv.url, amount: { total: 1, currency: 'CNY' },
    }),
    (err) => err.response && err.response.status === 400 && err.response.data.code === 'PARAM_ERROR',
  );
  log('v3 JSAPI order placed, its answer verified; without payer.openid: PARAM_ERROR');

  const res = await fetch(`${env('TOLLGATE_URL')}/jsapi-params?prepay_id=${encodeURIComponent(prepayID)}`);
  assert.equal(res.status, 200, `tollgate jsapi params: ${res.status}`);
  const params = await res.json();
  await checkSheet(params, prepayID, no);
  await paySheet(params);
  const n = await rcv.wait(no);
  assert.equal(n.event, 'TRANSACTION.SUCCESS');
  assert.equal(n.resource.trade_type, 'JSAPI');
  assert.equal(n.resource.payer.openid, openid);
  assert.equal(n.resource.amount.total, 2600);
  const paid = (await query(wxpay, no)).data;
  assert.equal(paid.trade_state, 'SUCCESS');
  assert.equal(paid.transaction_id, n.resource.transaction_id);
  log(`JSAPI sheet paid, https notification (${n.serial}) verified and decrypted, query SUCCESS`);
  return no;
}

// h5: the plugin places an H5 order, the payer pays on its page, the
// notification reaches the plugin's receiver.
async function h5(rcv) {
  const no = `IOPH${run}`;
  const order = (sceneInfo, outTradeNo = no) => wxpay.v3.pay.transactions.h5.post({
    appid, mchid, description: 'interop H5', out_trade_no: outTradeNo, notify_url: rcv.url,
    amount: { total: 1800, currency: 'CNY' }, scene_info: sceneInfo,
  });
  await assert.rejects(order({ h5_info: { type: 'Wap' } }, `${no}X`),
    (err) => err.response && err.response.status === 400 && err.response.data.code === 'PARAM_ERROR');
  const { data: { h5_url: h5URL } } = await order({ payer_client_ip: '203.0.113.7', h5_info: { type: 'Wap' } });
  log('v3 H5 order placed, its answer verified; without payer_client_ip: PARAM_ERROR');
  await payH5Page(h5URL, '18.00');
  const n = await rcv.wait(no);
  assert.equal(n.event, 'TRANSACTION.SUCCESS');
  assert.equal(n.resource.trade_type, 'MWEB');
  assert.equal(n.resource.amount.total, 1800);
  const paid = (await query(wxpay, no)).data;
  assert.equal(paid.trade_state, 'SUCCESS');
  assert.equal(paid.transaction_id, n.resource.transaction_id);
  log(`H5 page paid and redirected back, https notification (${n.serial}) verified and decrypted, query SUCCESS`);
}

// serveOrders pays the orders a `tollgate serve --mode production` placed
// (TOLLGATE_ORDERS: its answers to POST /v1/payments/orders): the JSAPI
// sheet tollgate signed, checked as above, and the H5 page of its h5_url;
// the plugin queries both at WeChat Pay. tollgate receives the
// notifications; the Go test checks it credited them.
async function serveOrders(orders) {
  const j = orders.jsapi;
  assert.equal(j.method, 'jsapi');
  const prepayID = j.jsapi.package.replace(/^prepay_id=/, '');
  await checkSheet(j.jsapi, prepayID, j.out_trade_no);
  await paySheet(j.jsapi);
  const pj = (await query(wxpay, j.out_trade_no)).data;
  assert.equal(pj.trade_state, 'SUCCESS');
  assert.equal(pj.trade_type, 'JSAPI');
  assert.equal(pj.payer.openid, orders.openid);
  assert.equal(pj.amount.total, j.amount_fen);
  log(`tollgate's JSAPI order ${j.out_trade_no} paid through its sheet; the plugin's query: SUCCESS for ${pj.payer.openid}`);

  const h = orders.h5;
  assert.equal(h.method, 'h5');
  await payH5Page(h.h5_url, (h.amount_fen / 100).toFixed(2));
  const ph = (await query(wxpay, h.out_trade_no)).data;
  assert.equal(ph.trade_state, 'SUCCESS');
  assert.equal(ph.trade_type, 'MWEB');
  assert.equal(ph.amount.total, h.amount_fen);
  log(`tollgate's H5 order ${h.out_trade_no} paid on its page; the plugin's query: SUCCESS`);
}

function flipByte(b64) {
  const b = Buffer.from(b64, 'base64');
  b[b.length >> 1] ^= 0x01;
  return b.toString('base64');
}

async function main() {
  const cfg = await (await fetch(`${base}/sim/config`)).json();
  assert.equal(cfg.merchant_private_key_pem, undefined, 'the emulator must not hold a merchant private key');
  assert.equal(cfg.mch_id, mchid);
  assert.equal(cfg.merchant_serial, merchantSerial);

  if (certMode) {
    const serials = await downloadCertificates();
    assert.equal(serials.length, 1);
    log(`platform certificate ${serials[0]} downloaded, decrypted with the APIv3 key and its answer verified`);
  } else {
    log(`public key mode: ${publicKeyID}`);
  }
  if (process.env.TOLLGATE_ORDERS) {
    await serveOrders(JSON.parse(process.env.TOLLGATE_ORDERS));
    console.log('INTEROP OK');
    return;
  }
  const rcv = await startReceiver();
  try {
    const jsapiNo = await jsapi(rcv);
    if (certMode) {
      const rotated = await postJSON('/sim/rotate-certificate');
      assert.equal(rotated.status, 200);
      assert.equal(platform[rotated.body.serial], undefined, 'a new serial');
      await assert.rejects(query(wxpay, jsapiNo), (err) => err.code === 'EV3_RES_HEADER_PLATFORM_SERIAL');
      const serials = await downloadCertificates();
      assert.deepEqual(serials.sort(), rotated.body.serials.slice().sort());
      assert.equal((await query(wxpay, jsapiNo)).data.trade_state, 'SUCCESS');
      log(`certificate rotated to ${rotated.body.serial}: the plugin refused the unknown serial, then verified it after downloading ${serials.length} certificates`);
    } else {
      // An answer signed by a key id the merchant does not have is refused.
      const stranger = new Wechatpay({
        baseURL: `${base}/`, mchid, serial: merchantSerial, privateKey: merchantKey, certs: { PUB_KEY_ID_0000: readFileSync(env('WECHATPAY_PUBLIC_KEY_FILE')) },
      });
      await assert.rejects(query(stranger, jsapiNo), (err) => err.code === 'EV3_RES_HEADER_PLATFORM_SERIAL');
      log('an answer signed by a public key id the client was not given: refused');
    }
    await h5(rcv);
  } finally {
    rcv.server.close();
  }
  console.log('INTEROP OK');
}

main().catch((err) => {
  const r = err && err.response;
  console.error('INTEROP FAILED:', err && err.stack, r ? `${r.status} ${JSON.stringify(r.data)}` : '');
  process.exit(1);
});
