// tollgate checkout page: choose a package, create the order with a device
// fingerprint and an Idempotency-Key, have it paid and poll the order until
// it is paid, closed, expired or failed. How it is paid is the server's
// choice (cfg.method): "native" shows the QR code, "jsapi" (inside WeChat)
// opens WeChat's payment sheet through WeixinJSBridge, "h5" (a phone's
// browser) goes to WeChat Pay's page, which sends the browser back here
// with ?order=, whose result the page then shows. No library, no network
// access outside this origin (the only page left for is WeChat Pay's H5
// page). The session token in the page URL authorises every call; no API
// key is ever here.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("config").textContent);
  var M = cfg.messages;
  var method = cfg.method || "native";
  var $ = function (id) { return document.getElementById(id); };
  var order = null;      // the order being paid
  var pkg = "";          // the package being bought
  var pollTimer = 0, tickTimer = 0, bridgeTimer = 0, pollDelay = 1000;
  var h5Back = false;    // showing an order WeChat Pay's H5 page came back from
  var skew = 0;          // server clock minus ours, from the Date header
  var fingerprint = null;

  // --- device fingerprint: a hash of stable browser properties (no canvas).
  function fingerprintSource() {
    var n = navigator, s = window.screen || {};
    var tz = "";
    try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { tz = ""; }
    return [
      n.userAgent, n.language, (n.languages || []).join(","), n.platform || "",
      s.width + "x" + s.height + "x" + s.colorDepth, window.devicePixelRatio || 1,
      tz, new Date().getTimezoneOffset(), n.hardwareConcurrency || 0, n.maxTouchPoints || 0
    ].join("|");
  }
  function hex(buf) {
    return Array.prototype.map.call(new Uint8Array(buf), function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }
  // fallbackHash is a 128-bit non-cryptographic hash for pages served
  // without a secure context (crypto.subtle absent).
  function fallbackHash(str) {
    var h = [0x811c9dc5, 0x01000193, 0x9e3779b9, 0x85ebca6b];
    for (var i = 0; i < str.length; i++) {
      var c = str.charCodeAt(i);
      for (var j = 0; j < 4; j++) { h[j] = Math.imul(h[j] ^ c, 0x01000193 + j * 2) >>> 0; }
    }
    return h.map(function (x) { return ("0000000" + x.toString(16)).slice(-8); }).join("");
  }
  function getFingerprint() {
    if (fingerprint) { return Promise.resolve(fingerprint); }
    var src = fingerprintSource();
    var p = (window.crypto && crypto.subtle)
      ? crypto.subtle.digest("SHA-256", new TextEncoder().encode(src)).then(hex)
      : Promise.resolve(fallbackHash(src));
    return p.then(function (fp) { fingerprint = fp; return fp; });
  }
  function randomKey() {
    var a = new Uint8Array(16);
    crypto.getRandomValues(a);
    return hex(a.buffer);
  }
  // idemKey keeps one Idempotency-Key per package for this tab, so a reload
  // or a retried request returns the same order instead of a new one.
  // The key is per payment method too: the same key with another method is
  // another request, which the server refuses.
  function idemName(id) { return "tollgate.idem." + cfg.base + "." + method + "." + id; }
  function idemKey(id, fresh) {
    var k = idemName(id), v = null;
    try { v = fresh ? null : sessionStorage.getItem(k); } catch (e) { v = null; }
    if (!v) {
      v = randomKey();
      try { sessionStorage.setItem(k, v); } catch (e) { /* private mode */ }
    }
    return v;
  }

  // --- requests
  function api(method, path, body, headers) {
    var h = { "Accept": "application/json" };
    if (body !== undefined) { h["Content-Type"] = "application/json"; }
    for (var k in headers || {}) { h[k] = headers[k]; }
    return fetch(path, {
      method: method, headers: h, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (res) {
      var d = Date.parse(res.headers.get("Date") || "");
      if (!isNaN(d)) { skew = d - Date.now(); }
      return res.json().catch(function () { return {}; }).then(function (j) {
        if (!res.ok) {
          var err = new Error((j.error && j.error.message) || M["error.generic"]);
          err.code = j.error && j.error.code; err.status = res.status;
          throw err;
        }
        return j;
      });
    });
  }

  // --- views
  function show(state) {
    $("pay").hidden = false;
    document.querySelector(".checkout").classList.add("paying");
    ["creating", "qr", "jsapi", "h5", "success", "failed"].forEach(function (s) { $("state-" + s).hidden = s !== state; });
    // "Show QR code instead" stays offered until the order is paid.
    if ($("alt-qr")) { $("alt-qr").hidden = state === "success" || state === "qr"; }
  }
  function markSelected(id) {
    var cards = document.querySelectorAll(".card");
    for (var i = 0; i < cards.length; i++) {
      cards[i].classList.toggle("selected", cards[i].getAttribute("data-package") === id);
    }
  }
  function fail(message) {
    stopTimers();
    $("failed-message").textContent = message;
    showReturn("return-cancelled", "cancelled");
    show("failed");
  }
  // returnTo is the app's return URL with the order and its outcome.
  function returnTo(status) {
    var u = new URL(cfg.return_url);
    if (order && order.out_trade_no) { u.searchParams.set("order", order.out_trade_no); }
    u.searchParams.set("status", status);
    return u.toString();
  }
  function showReturn(id, status) {
    if (!cfg.return_url || !$(id)) { return false; }
    $(id + "-link").href = returnTo(status);
    $(id).hidden = false;
    return true;
  }
  function sessionFailure(err) {
    if (err.code === "session_expired") { fail(M["err.expired.title"] + ". " + M["err.expired.body"]); return true; }
    if (err.code === "session_invalid") { fail(M["err.invalid.title"] + ". " + M["err.invalid.body"]); return true; }
    return false;
  }
  function stopTimers() {
    clearTimeout(pollTimer); clearInterval(tickTimer); clearTimeout(bridgeTimer);
    pollTimer = 0; tickTimer = 0; bridgeTimer = 0;
  }

  // --- flow
  function choose(id, fresh) {
    stopTimers();
    pkg = id; order = null; pollDelay = 1000;
    markSelected(id);
    qrLinks(id);
    show("creating");
    getFingerprint().then(function (fp) {
      return api("POST", cfg.base + "/orders", { package_id: id, device_fingerprint: fp, method: method },
        { "Idempotency-Key": idemKey(id, fresh) });
    }).then(function (o) {
      order = o;
      if (o.method === "jsapi") { payJSAPI(o); } else if (o.method === "h5") { goH5(o); } else { showOrder(o); }
    }).catch(function (err) {
      if (!sessionFailure(err)) { fail(err.message || M["error.generic"]); }
    });
  }

  function showOrder(o) {
    if (finished(o)) { return; }
    $("qr").src = o.qr_url + "?size=480";
    $("amount").textContent = o.amount;
    $("order-no").textContent = o.out_trade_no;
    $("status-text").textContent = M[o.status === "USERPAYING" ? "userpaying" : "waiting"];
    $("status-text").className = "status";
    show("qr");
    tick();
    tickTimer = setInterval(tick, 1000);
    schedulePoll();
  }

  // finished shows a final state and reports whether o is in one.
  function finished(o) {
    switch (o.status) {
      case "SUCCESS":
        stopTimers();
        $("new-balance").textContent = o.balance ? o.balance.display : "";
        show("success");
        try { sessionStorage.removeItem(idemName(pkg)); } catch (e) { /* ignore */ }
        // Back to the app a moment after the user saw the payment land.
        if (showReturn("return-paid", "paid")) {
          var back = $("return-paid-link").href;
          setTimeout(function () { window.location.assign(back); }, 3000);
        }
        return true;
      case "PAYERROR": fail(M.payerror); return true;
      case "REFUND": fail(M.refunded); return true;
      case "CLOSED": fail(M[o.expired ? "expired" : "closed"]); return true;
    }
    return false;
  }

  function remaining() {
    return Date.parse(order.expires_at) - (Date.now() + skew);
  }
  function tick() {
    if (!order) { return; }
    var ms = remaining();
    if (ms <= 0) {
      $("countdown").textContent = "00:00";
      poll(true);
      return;
    }
    var s = Math.floor(ms / 1000);
    var mm = Math.floor(s / 60), ss = s % 60;
    $("countdown").textContent = (mm < 10 ? "0" : "") + mm + ":" + (ss < 10 ? "0" : "") + ss;
  }

  // schedulePoll polls with backoff: 1 s, then ×1.5 up to 5 s while the
  // order is pending; a network error backs off further.
  function schedulePoll() {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(function () { poll(false); }, pollDelay);
  }
  function poll(expiring) {
    if (!order) { return; }
    var no = order.out_trade_no;
    api("GET", cfg.base + "/orders/" + encodeURIComponent(no)).then(function (o) {
      if (!order || order.out_trade_no !== no) { return; }
      order = o;
      if (o.package_id) { pkg = o.package_id; }
      if (finished(o)) { return; }
      if (o.expired || (expiring && remaining() <= 0)) { fail(M.expired); return; }
      if (o.method === "h5") {
        if (h5Back) {
          fillFacts("h5", o);
          status("h5-status", M["h5.waiting"], false);
          $("h5-go").hidden = !pkg;
        }
      } else if (o.method !== "jsapi") {
        status("status-text", M[o.status === "USERPAYING" ? "userpaying" : "waiting"], false);
      }
      pollDelay = Math.min(pollDelay * 1.5, 5000);
      schedulePoll();
    }).catch(function (err) {
      if (sessionFailure(err)) { return; }
      var el = { jsapi: "jsapi-status", h5: "h5-status" }[method] || "status-text";
      status(el, M["error.network"], true);
      pollDelay = Math.min(pollDelay * 2, 15000);
      schedulePoll();
    });
  }

  function status(id, text, warn) {
    $(id).textContent = text;
    $(id).className = warn ? "status warn" : "status";
  }
  function fillFacts(prefix, o) {
    $(prefix + "-amount").textContent = o.amount || "";
    $(prefix + "-order-no").textContent = o.out_trade_no || "";
  }
  // qrLinks points "Show QR code instead" at the package being bought.
  function qrLinks(id) {
    ["show-qr", "packages-show-qr"].forEach(function (l) {
      if ($(l)) { $(l).href = cfg.base + "?method=native" + (id ? "&package=" + encodeURIComponent(id) : ""); }
    });
  }

  // --- JSAPI: WeChat's payment sheet, through the bridge WeChat's browser
  // injects (it may arrive after this script: WeixinJSBridgeReady).
  function payJSAPI(o) {
    if (finished(o)) { return; }
    fillFacts("jsapi", o);
    $("jsapi-retry").hidden = true;
    $("jsapi-spinner").hidden = false;
    status("jsapi-status", M["jsapi.opening"], false);
    show("jsapi");
    schedulePoll();
    if (!o.jsapi) { fail(M["error.generic"]); return; }
    withBridge(function () { invokeSheet(o); });
  }
  function withBridge(fn) {
    if (window.WeixinJSBridge && typeof window.WeixinJSBridge.invoke === "function") { fn(); return; }
    var done = false;
    document.addEventListener("WeixinJSBridgeReady", function () {
      if (done) { return; }
      done = true; clearTimeout(bridgeTimer);
      fn();
    }, false);
    clearTimeout(bridgeTimer);
    bridgeTimer = setTimeout(function () {
      if (!done) { status("jsapi-status", M["jsapi.nobridge"], true); }
    }, 8000);
  }
  function invokeSheet(o) {
    if (!order || order.out_trade_no !== o.out_trade_no) { return; }
    status("jsapi-status", M["jsapi.confirm"], false);
    window.WeixinJSBridge.invoke("getBrandWCPayRequest", o.jsapi, function (res) {
      if (!order || order.out_trade_no !== o.out_trade_no) { return; }
      var msg = (res && res.err_msg) || "";
      if (msg === "get_brand_wcpay_request:ok") {
        // The sheet's "ok" is not proof of payment: the order's status is.
        status("jsapi-status", M["jsapi.checking"], false);
        pollDelay = 300;
        schedulePoll();
      } else if (msg === "get_brand_wcpay_request:cancel") {
        $("jsapi-spinner").hidden = true;
        status("jsapi-status", M["jsapi.cancelled"], true);
        $("jsapi-retry").hidden = false;
      } else {
        fail(M["jsapi.failed"]);
      }
    });
  }

  // --- H5: WeChat Pay's page in this browser; it sends the browser back to
  // this page with ?order=. The link carries referrerpolicy="origin": WeChat
  // Pay checks the Referer's domain, and the page's own policy sends none.
  function goH5(o) {
    if (finished(o)) { return; }
    showH5(o, false);
    if (!o.h5_url) { fail(M["error.generic"]); return; }
    var a = $("h5-go");
    a.href = o.h5_url;
    a.textContent = M["h5.continue"];
    a.hidden = false;
    a.click();
  }
  function showH5(o, back) {
    h5Back = back;
    fillFacts("h5", o);
    $("h5-title").textContent = M[back ? "h5.back" : "h5.opening"];
    status("h5-status", back ? M["h5.waiting"] : "", false);
    if (back) {
      $("h5-go").textContent = M["h5.again"];
      $("h5-go").hidden = false;
    }
    show("h5");
  }
  // resume shows the result of the order WeChat Pay's H5 page came back
  // from, polling while it is pending.
  function resume(no) {
    stopTimers();
    order = { out_trade_no: no };
    showH5(order, true);
    $("h5-go").hidden = true; // until the order says which package it is
    pollDelay = 300;
    poll(false);
  }

  // sim asks the mounted WeChat Pay emulator to act as the payer.
  function sim(action) {
    if (!order) { return; }
    var b = $("sim-" + action);
    b.disabled = true;
    fetch(cfg.sandbox_path + "/sim/orders/" + encodeURIComponent(order.out_trade_no) + "/" + action, {
      method: "POST", credentials: "same-origin"
    }).then(function (res) {
      if (!res.ok) { throw new Error("emulator answered " + res.status); }
      pollDelay = 300;
      schedulePoll();
    }).catch(function (err) {
      $("status-text").textContent = err.message;
      $("status-text").className = "status warn";
    }).then(function () { b.disabled = false; });
  }

  // --- wiring
  var cards = document.querySelectorAll(".card");
  for (var i = 0; i < cards.length; i++) {
    cards[i].addEventListener("click", function (ev) {
      choose(ev.currentTarget.getAttribute("data-package"), false);
    });
  }
  $("try-again").addEventListener("click", function () { if (pkg) { choose(pkg, true); } });
  $("choose-other").addEventListener("click", function () {
    stopTimers(); order = null;
    $("pay").hidden = true;
    document.querySelector(".checkout").classList.remove("paying");
    markSelected("");
    $("packages").scrollIntoView({ behavior: "smooth" });
  });
  $("jsapi-retry").addEventListener("click", function () {
    if (!order || !order.jsapi) { return; }
    $("jsapi-retry").hidden = true;
    $("jsapi-spinner").hidden = false;
    withBridge(function () { invokeSheet(order); });
  });
  $("h5-go").addEventListener("click", function (ev) {
    // Coming back, "Continue paying" asks for the order again (the same
    // Idempotency-Key answers the same order and its h5_url).
    if (h5Back) {
      ev.preventDefault();
      if (pkg) { choose(pkg, false); }
    }
  });
  // Back from WeChat Pay's page to a page the browser kept (back/forward
  // cache): show it as coming back, and ask how the order is doing.
  window.addEventListener("pageshow", function (ev) {
    if (ev.persisted && order && order.method === "h5" && !h5Back) {
      showH5(order, true);
      pollDelay = 300;
      schedulePoll();
    }
  });
  if (cfg.sandbox) {
    $("sim-pay").addEventListener("click", function () { sim("pay"); });
    $("sim-fail").addEventListener("click", function () { sim("fail"); });
  }
  getFingerprint();
  if (cfg.order) {
    resume(cfg.order);
  } else if (cfg.selected) {
    choose(cfg.selected, false);
  }
})();
