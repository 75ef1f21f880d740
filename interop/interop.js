// interop.js drives the wxpaysim emulator with wechatpay-axios-plugin, an
// independent WeChat Pay client written against the real API, to show the
// emulator works for a client that was not written alongside it. It places,
// queries, pays (through /sim) and closes orders over API v2 and v3, and
// verifies the notifications it receives with the plugin's own primitives.
//
// Usage: WXPAYSIM_URL=http://127.0.0.1:8090 node interop.js
// Exit status 0 and a last line "INTEROP OK" mean every check passed.
'use strict';

const http = require('node:http');
const assert = require('node:assert/strict');
const { Wechatpay, Rsa, Aes, Hash, Formatter, Transformer } = require('wechatpay-axios-plugin');

const base = (process.env.WXPAYSIM_URL || 'http://127.0.0.1:8090').replace(/\/$/, '');
const run = `${Date.now()}`.slice(-8);

function log(...args) { console.log('interop:', ...args); }

// startReceiver is the merchant's notify endpoint: it answers the HEAD
// handshake, verifies each notification and acknowledges it.
function startReceiver(cfg, platformKey) {
  const waiters = new Map(); // out_trade_no -> resolve
  const seen = new Map();
  const deliver = (no, what) => {
    seen.set(no, what);
    const w = waiters.get(no);
    if (w) { w(what); }
  };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (req.method === 'HEAD') { res.writeHead(200); res.end(); return; }
      try {
        if (req.url === '/notify/v3') {
          const h = req.headers;
          const msg = Formatter.response(h['wechatpay-timestamp'], h['wechatpay-nonce'], body);
          if (h['wechatpay-serial'] !== cfg.platform_public_key_id || !Rsa.verify(msg, h['wechatpay-signature'], platformKey)) {
            res.writeHead(401, { 'Content-Type': 'application/json' });
            res.end(JSON.stringify({ code: 'FAIL', message: 'bad signature' }));
            return;
          }
          const env = JSON.parse(body);
          const r = env.resource;
          const plain = JSON.parse(Aes.AesGcm.decrypt(r.ciphertext, cfg.apiv3_key, r.nonce, r.associated_data));
          deliver(plain.out_refund_no || plain.out_trade_no, { event: env.event_type, resource: plain });
          res.writeHead(204); res.end();
          return;
        }
        const data = Transformer.toObject(body);
        const type = data.sign.length === 64 ? Hash.ALGO_HMAC_SHA256 : Hash.ALGO_MD5;
        if (!Hash.equals(Hash.sign(type, data, cfg.api_key), data.sign)) {
          res.writeHead(200); res.end('<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[bad sign]]></return_msg></xml>');
          return;
        }
        deliver(data.out_trade_no, { type, data });
        res.writeHead(200); res.end('<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>');
      } catch (err) {
        log('receiver error', err);
        res.writeHead(500); res.end();
      }
    });
  });
  const wait = (no) => new Promise((resolve, reject) => {
    if (seen.has(no)) { resolve(seen.get(no)); return; }
    const timer = setTimeout(() => reject(new Error(`no notification for ${no}`)), 15000);
    waiters.set(no, (v) => { clearTimeout(timer); resolve(v); });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, wait, url: `http://127.0.0.1:${server.address().port}` })));
}

async function sim(path) {
  const res = await fetch(`${base}${path}`, { method: 'POST' });
  const text = await res.text();
  assert.equal(res.status, 200, `POST ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

async function v3(wxpay, cfg, rcv) {
  const no = `IOP3${run}A`;
  const { data: { code_url: codeURL } } = await wxpay.v3.pay.transactions.native.post({
    mchid: cfg.mch_id, appid: cfg.appid, out_trade_no: no, description: 'interop v3',
    notify_url: `${rcv.url}/notify/v3`, amount: { total: 1234, currency: 'CNY' },
  });
  assert.match(codeURL, /^weixin:\/\/wxpay\/bizpayurl\?pr=/);
  const query = () => wxpay.v3.pay.transactions.outTradeNo.$out_trade_no$.get({ params: { mchid: cfg.mch_id }, out_trade_no: no });
  assert.equal((await query()).data.trade_state, 'NOTPAY');
  await sim(`/sim/orders/${no}/pay`);
  const n = await rcv.wait(no);
  assert.equal(n.event, 'TRANSACTION.SUCCESS');
  assert.equal(n.resource.amount.total, 1234);
  const paid = (await query()).data;
  assert.equal(paid.trade_state, 'SUCCESS');
  assert.equal(paid.transaction_id, n.resource.transaction_id);
  log('v3 native order, query, pay, verified notification: ok');

  const closeNo = `IOP3${run}B`;
  await wxpay.v3.pay.transactions.native.post({
    mchid: cfg.mch_id, appid: cfg.appid, out_trade_no: closeNo, description: 'interop v3 close',
    notify_url: `${rcv.url}/notify/v3`, amount: { total: 100, currency: 'CNY' },
  });
  const closed = await wxpay.v3.pay.transactions.outTradeNo.$out_trade_no$.close.post({ mchid: cfg.mch_id }, { out_trade_no: closeNo });
  assert.equal(closed.status, 204);
  const q = await wxpay.v3.pay.transactions.outTradeNo.$out_trade_no$.get({ params: { mchid: cfg.mch_id }, out_trade_no: closeNo });
  assert.equal(q.data.trade_state, 'CLOSED');
  log('v3 close: ok');

  const refund = await wxpay.v3.refund.domestic.refunds.post({
    out_trade_no: no, out_refund_no: `IOPR${run}`, amount: { refund: 234, total: 1234, currency: 'CNY' },
  });
  assert.equal(refund.data.status, 'PROCESSING');
  await sim(`/sim/refunds/IOPR${run}/complete`);
  const rn = await rcv.wait(`IOPR${run}`);
  assert.equal(rn.event, 'REFUND.SUCCESS');
  assert.equal(rn.resource.amount.refund, 234);
  const rq = await wxpay.v3.refund.domestic.refunds.$out_refund_no$.get({ out_refund_no: `IOPR${run}` });
  assert.equal(rq.data.status, 'SUCCESS');
  log('v3 refund accepted, completed, notified and queried: ok');
}

async function v2(wxpay, cfg, rcv) {
  const order = (no, signType) => wxpay.v2.pay.unifiedorder.post({
    appid: cfg.appid, mch_id: cfg.mch_id, body: 'interop v2', out_trade_no: no, total_fee: 990,
    spbill_create_ip: '127.0.0.1', notify_url: `${rcv.url}/notify/v2`, trade_type: 'NATIVE', product_id: 'p1',
    sign_type: signType,
  });
  for (const signType of [Hash.ALGO_MD5, Hash.ALGO_HMAC_SHA256]) {
    const no = `IOP2${run}${signType === Hash.ALGO_MD5 ? 'M' : 'H'}`;
    const { data } = await order(no, signType);
    assert.match(data.code_url, /^weixin:\/\/wxpay\/bizpayurl\?pr=/);
    const query = () => wxpay.v2.pay.orderquery.post({ appid: cfg.appid, mch_id: cfg.mch_id, out_trade_no: no, sign_type: signType });
    assert.equal((await query()).data.trade_state, 'NOTPAY');
    await sim(`/sim/orders/${no}/pay`);
    const n = await rcv.wait(no);
    assert.equal(n.type, signType, 'notification signed with the order\'s sign type');
    assert.equal(n.data.total_fee, '990');
    assert.equal(n.data.sign_type, undefined);
    const paid = (await query()).data;
    assert.equal(paid.trade_state, 'SUCCESS');
    assert.equal(paid.transaction_id, n.data.transaction_id);
    log(`v2 ${signType} order, query, pay, verified notification: ok`);
  }
  const closeNo = `IOP2${run}C`;
  await order(closeNo, Hash.ALGO_MD5);
  const closed = await wxpay.v2.pay.closeorder.post({ appid: cfg.appid, mch_id: cfg.mch_id, out_trade_no: closeNo });
  assert.equal(closed.data.result_code, 'SUCCESS');
  await assert.rejects(
    wxpay.v2.pay.closeorder.post({ appid: cfg.appid, mch_id: cfg.mch_id, out_trade_no: closeNo }),
    (err) => err.response && err.response.data.err_code === 'ORDERCLOSED',
  );
  log('v2 close, ORDERCLOSED on the second close: ok');
}

async function main() {
  const cfg = await (await fetch(`${base}/sim/config`)).json();
  assert.ok(cfg.merchant_private_key_pem, 'the emulator must use its built-in test merchant key');
  const platformKey = Rsa.from(cfg.platform_public_key_pem, Rsa.KEY_TYPE_PUBLIC);
  const rcv = await startReceiver(cfg, platformKey);
  const wxpay = new Wechatpay({
    mchid: cfg.mch_id,
    serial: cfg.merchant_serial,
    privateKey: cfg.merchant_private_key_pem,
    certs: { [cfg.platform_public_key_id]: cfg.platform_public_key_pem },
    secret: cfg.api_key,
    baseURL: `${base}/`,
  });
  try {
    await v3(wxpay, cfg, rcv);
    await v2(wxpay, cfg, rcv);
  } finally {
    rcv.server.close();
  }
  console.log('INTEROP OK');
}

main().catch((err) => {
  const r = err && err.response;
  console.error('INTEROP FAILED:', err && err.message, r ? `${r.status} ${JSON.stringify(r.data)}` : '');
  process.exit(1);
});
