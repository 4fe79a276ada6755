// crownguard console: small progressive enhancement. Every page works without it; this adds
// live step colours on a run's page (polling its state.json), live runs and access pages
// (polling live.json, then fetching the page again when the journal moved), deadline
// countdowns and a confirmation before cancel and undo. Vendored with the package; nothing is fetched from
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

  function typingIn(region) {
    // A comment or a reason half written in this part of the page: do not swap it away.
    var active = document.activeElement;
    if (active && region.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)
        && active.type !== "submit") return true;
    var fields = region.querySelectorAll("textarea, input:not([type=hidden])");
    for (var i = 0; i < fields.length; i++) if (fields[i].value) return true;
    return false;
  }

  function watchPage(marker) {
    // The page's live parts ([data-live] with an id) follow the journal: live.json says the
    // last entry's number; when it passed the page's, the page is fetched again (marked as a
    // refresh: the server keeps any notices for a real page view) and each part swapped.
    var head = marker.getAttribute("data-live-head");
    var stopped = false;
    function get(url, accept, done) {
      var request = new XMLHttpRequest();
      request.open("GET", url);
      request.setRequestHeader("Accept", accept);
      request.setRequestHeader("X-Console-Live", "1");
      request.onload = function () {
        var signedOut = request.status === 401 ||
            (request.responseURL && request.responseURL.indexOf("/ui/login") >= 0);
        if (signedOut) { stopped = true; return; }  // the next click shows the sign-in page
        if (request.status !== 200) return schedule(10000);
        done(request.responseText);
      };
      request.onerror = function () { schedule(10000); };
      request.send();
    }
    function swap(html) {
      var fresh = new DOMParser().parseFromString(html, "text/html");
      var freshMarker = fresh.querySelector("[data-live-head]");
      var parts = document.querySelectorAll("[data-live][id]");
      var held = false;
      for (var i = 0; i < parts.length; i++) {
        var next = fresh.getElementById(parts[i].id);
        if (!next) continue;
        if (typingIn(parts[i])) { held = true; continue; }
        if (next.innerHTML !== parts[i].innerHTML) {
          parts[i].replaceWith(document.importNode(next, true));
        }
      }
      if (!held && freshMarker) {
        head = freshMarker.getAttribute("data-live-head");
        marker.setAttribute("data-live-head", head);
      }
      tickDeadlines();
      confirmForms();
      schedule(2000);
    }
    function poll() {
      if (stopped) return;
      if (document.hidden) return schedule(2000);
      get("/ui/live.json", "application/json", function (text) {
        var state;
        try { state = JSON.parse(text); } catch (e) { return schedule(10000); }
        if (String(state.head) === head) return schedule(2000);
        get(window.location.href, "text/html", swap);
      });
    }
    function schedule(ms) { window.setTimeout(poll, ms); }
    schedule(2000);
  }

  function confirmForms() {
    var forms = document.querySelectorAll("form[data-confirm]:not([data-confirm-bound])");
    for (var i = 0; i < forms.length; i++) {
      forms[i].setAttribute("data-confirm-bound", "");
      forms[i].addEventListener("submit", function (event) {
        if (!window.confirm(this.getAttribute("data-confirm"))) event.preventDefault();
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var run = document.querySelector(".run[data-state-url]");
    if (run) watchRun(run);
    var live = document.querySelector("[data-live-head]");
    if (live) watchPage(live);
    confirmForms();
    tickDeadlines();
    window.setInterval(tickDeadlines, 1000);
  });
})();
