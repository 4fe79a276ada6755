// crownguard console: small progressive enhancement. Every page works without it; this adds
// live step colours on a run's page (polling its state.json), deadline countdowns and a
// confirmation before cancel and undo. Vendored with the package; nothing is fetched from
// elsewhere.
(function () {
  "use strict";

  function timeLeft(iso) {
    var ms = Date.parse(iso) - Date.now();
    if (isNaN(ms)) return null;
    var s = Math.floor(ms / 1000);
    if (s <= 0) return "expired";
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600),
        m = Math.floor((s % 3600) / 60), sec = s % 60, parts = [];
    if (d) parts.push(d + " d");
    if (h) parts.push(h + " h");
    if (m && !d) parts.push(m + " min");
    if (!d && !h) parts.push(sec + " s");
    return parts.join(" ") + " left";
  }

  function tickDeadlines() {
    var nodes = document.querySelectorAll("time[data-expires]");
    for (var i = 0; i < nodes.length; i++) {
      var iso = nodes[i].getAttribute("data-expires");
      var text = iso && timeLeft(iso);
      if (text) nodes[i].textContent = text;
    }
  }

  function setStatusClass(el, status) {
    // setAttribute, not className: the graph's nodes are SVG elements.
    el.setAttribute("class", (el.getAttribute("class") || "").replace(/\bst-[a-z]+\b/, "st-" + status));
  }

  function busy() {
    // Someone is typing a comment or a reason: do not reload under their hands.
    var active = document.activeElement;
    if (active && (active.tagName === "TEXTAREA" || active.tagName === "INPUT")) return true;
    var fields = document.querySelectorAll("textarea, input[name=reason]");
    for (var i = 0; i < fields.length; i++) if (fields[i].value) return true;
    return false;
  }

  function watchRun(run) {
    var url = run.getAttribute("data-state-url");
    var status = run.getAttribute("data-status");
    var waiting = run.getAttribute("data-waiting");
    var ended = ["succeeded", "failed", "cancelled"];
    function poll() {
      var request = new XMLHttpRequest();
      request.open("GET", url);
      request.setRequestHeader("Accept", "application/json");
      request.onload = function () {
        if (request.status !== 200) return schedule(10000);
        var state;
        try { state = JSON.parse(request.responseText); } catch (e) { return schedule(10000); }
        Object.keys(state.steps).forEach(function (step) {
          var s = state.steps[step];
          var node = run.querySelector('g.node[data-step="' + CSS.escape(step) + '"]');
          if (node) {
            setStatusClass(node, s);
            var label = node.querySelector(".node-status");
            if (label) label.textContent = s;
          }
          var badge = run.querySelector('tr[data-step="' + CSS.escape(step) + '"] .badge');
          if (badge) { setStatusClass(badge, s); badge.textContent = s; }
        });
        var badge = document.getElementById("run-status");
        if (badge) { setStatusClass(badge, state.status); badge.textContent = state.status; }
        var nowWaiting = state.waiting.join(",");
        if ((state.status !== status || nowWaiting !== waiting) && !busy()) {
          window.location.reload();  // new questions, controls and timeline: the server's page
          return;
        }
        if (ended.indexOf(state.status) < 0) schedule(1500);
      };
      request.onerror = function () { schedule(10000); };
      request.send();
    }
    function schedule(ms) { window.setTimeout(poll, ms); }
    schedule(1500);
  }

  function confirmForms() {
    var forms = document.querySelectorAll("form[data-confirm]");
    for (var i = 0; i < forms.length; i++) {
      forms[i].addEventListener("submit", function (event) {
        if (!window.confirm(this.getAttribute("data-confirm"))) event.preventDefault();
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var run = document.querySelector(".run[data-state-url]");
    if (run) watchRun(run);
    confirmForms();
    tickDeadlines();
    window.setInterval(tickDeadlines, 1000);
  });
})();
