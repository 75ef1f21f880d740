// tollgate account page: refund buttons. The session token in the page URL
// authorises the call; no API key is ever here.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("config").textContent);
  var M = cfg.messages;
  var status = document.getElementById("refund-status");
  function say(text, warn) {
    status.hidden = false;
    status.textContent = text;
    status.className = warn ? "status warn" : "status";
  }
  var buttons = document.querySelectorAll("button.refund");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].addEventListener("click", function (ev) {
      var b = ev.currentTarget, no = b.getAttribute("data-order");
      if (!window.confirm(M["refund.confirm"])) { return; }
      b.disabled = true;
      fetch(cfg.base + "/orders/" + encodeURIComponent(no) + "/refund", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json" }, body: "{}"
      }).then(function (res) {
        return res.json().then(function (j) {
          if (!res.ok) { throw new Error((j.error && j.error.message) || M["error.generic"]); }
          return j;
        });
      }).then(function (j) {
        say(M["refund.done"] + ": ¥" + j.amount);
        setTimeout(function () { window.location.reload(); }, 1200);
      }).catch(function (err) {
        say(err.message, true);
        b.disabled = false;
      });
    });
  }
})();
