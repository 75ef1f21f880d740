// tollgate checkout page: choose a package, create the order with a device
// fingerprint and an Idempotency-Key, show the QR code and poll the order
// until it is paid, closed, expired or failed. No library, no network
// access outside this origin. The session token in the page URL authorises
// every call; no API key is ever here.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("config").textContent);
  var M = cfg.messages;
  var $ = function (id) { return document.getElementById(id); };
  var order = null;      // the order being paid
  var pkg = "";          // the package being bought
  var pollTimer = 0, tickTimer = 0, pollDelay = 1000;
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
  function idemKey(id, fresh) {
    var k = "tollgate.idem." + cfg.base + "." + id, v = null;
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
    ["creating", "qr", "success", "failed"].forEach(function (s) { $("state-" + s).hidden = s !== state; });
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
    show("failed");
  }
  function sessionFailure(err) {
    if (err.code === "session_expired") { fail(M["err.expired.title"] + ". " + M["err.expired.body"]); return true; }
    if (err.code === "session_invalid") { fail(M["err.invalid.title"] + ". " + M["err.invalid.body"]); return true; }
    return false;
  }
  function stopTimers() {
    clearTimeout(pollTimer); clearInterval(tickTimer); pollTimer = 0; tickTimer = 0;
  }

  // --- flow
  function choose(id, fresh) {
    stopTimers();
    pkg = id; order = null; pollDelay = 1000;
    markSelected(id);
    show("creating");
    getFingerprint().then(function (fp) {
      return api("POST", cfg.base + "/orders", { package_id: id, device_fingerprint: fp },
        { "Idempotency-Key": idemKey(id, fresh) });
    }).then(function (o) {
      order = o;
      showOrder(o);
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
        try { sessionStorage.removeItem("tollgate.idem." + cfg.base + "." + pkg); } catch (e) { /* ignore */ }
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
      if (finished(o)) { return; }
      if (o.expired || (expiring && remaining() <= 0)) { fail(M.expired); return; }
      $("status-text").textContent = M[o.status === "USERPAYING" ? "userpaying" : "waiting"];
      $("status-text").className = "status";
      pollDelay = Math.min(pollDelay * 1.5, 5000);
      schedulePoll();
    }).catch(function (err) {
      if (sessionFailure(err)) { return; }
      $("status-text").textContent = M["error.network"];
      $("status-text").className = "status warn";
      pollDelay = Math.min(pollDelay * 2, 15000);
      schedulePoll();
    });
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
  if (cfg.sandbox) {
    $("sim-pay").addEventListener("click", function () { sim("pay"); });
    $("sim-fail").addEventListener("click", function () { sim("fail"); });
  }
  getFingerprint();
  if (cfg.selected) { choose(cfg.selected, false); }
})();
