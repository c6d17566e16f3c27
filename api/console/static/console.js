// Vigil care console: the page's only script. It counts down to each next ladder step, counts ages up,
// opens an alert when its queue row is clicked, and keeps the page live: when the server's event stream
// says an alert changed (or that the page may have missed something), it fetches the page's fragment and
// swaps in the parts marked data-part. Without it every page still works; it just does not move.
(function () {
  "use strict";

  var body = document.body;
  // The server's clock minus this browser's, so that countdowns agree with the server.
  var skew = body.dataset.now ? Date.parse(body.dataset.now) - Date.now() : 0;

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  // Same wording as api/console/words.py duration().
  function duration(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    if (s < 90) return s + " s";
    var m = Math.floor(s / 60);
    if (m < 90) return m + " min";
    var h = Math.floor(m / 60);
    m = m % 60;
    if (h < 48) return m ? h + " h " + m + " min" : h + " h";
    var d = Math.floor(h / 24);
    h = h % 24;
    return h ? d + " d " + h + " h" : d + " d";
  }

  // Same wording as api/console/words.py countdown().
  function countdown(ms) {
    var s = Math.floor(ms / 1000);
    if (s <= 0) return "due now";
    if (s < 3600) return "in " + Math.floor(s / 60) + ":" + pad(s % 60);
    return "in " + duration(ms);
  }

  function tick() {
    var now = Date.now() + skew;
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var left = Date.parse(el.dataset.due) - now;
      el.textContent = countdown(left);
      el.classList.toggle("overdue", left <= 0);
    });
    document.querySelectorAll("[data-since]").forEach(function (el) {
      el.textContent = duration(now - Date.parse(el.dataset.since));
    });
  }

  // A queue row opens its alert, except when the click was on a link or button inside it.
  document.addEventListener("click", function (event) {
    var row = event.target.closest("tr[data-href]");
    if (!row || event.target.closest("a, button, input, select, textarea")) return;
    window.location.href = row.dataset.href;
  });

  tick();
  setInterval(tick, 1000);

  var live = document.querySelector("[data-live-src]");
  if (!live || !window.EventSource) return;
  var indicator = document.querySelector("[data-live-state]");
  var downTimer = null;
  var waiting = null;
  var busy = false;
  var again = false;

  function show(state) {
    if (!indicator) return;
    indicator.hidden = false;
    indicator.classList.toggle("is-live", state === "live");
    indicator.classList.toggle("is-down", state === "down");
    indicator.textContent = state === "live" ? "Live" : "Reconnecting…";
  }

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var known = {};
    document.querySelectorAll("tr[data-alert-id]").forEach(function (row) { known[row.dataset.alertId] = true; });
    fresh.querySelectorAll("[data-part]").forEach(function (part) {
      var here = document.querySelector('[data-part="' + part.dataset.part + '"]');
      if (here) here.replaceWith(document.adoptNode(part));
    });
    document.querySelectorAll("tr[data-alert-id]").forEach(function (row) {
      if (!known[row.dataset.alertId]) row.classList.add("is-new");
    });
    tick();
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(live.dataset.liveSrc, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (response.status === 401) { window.location.href = "/"; return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) { if (html) swap(html); })
      .catch(function () { /* the next event or resync tries again */ })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  function soon() {
    clearTimeout(waiting);
    waiting = setTimeout(refresh, 100);
  }

  function connect() {
    var source = new EventSource("/console/events?since=" + encodeURIComponent(body.dataset.feed || ""));
    source.addEventListener("open", function () {
      clearTimeout(downTimer);
      show("live");
    });
    source.addEventListener("error", function () {
      // Streams end every few seconds and the browser reconnects at once; only a longer gap is worth showing.
      clearTimeout(downTimer);
      downTimer = setTimeout(function () { show("down"); }, 3000);
      if (source.readyState === EventSource.CLOSED) {
        // An answer that is not a stream (the server restarting, the session over) ends the browser's own
        // retries: start again a little later, and reload the view (a signed-out session goes to sign-in).
        setTimeout(function () { connect(); soon(); }, 5000);
      }
    });
    source.addEventListener("alert", function (event) {
      if (!live.dataset.liveAlert || event.data === live.dataset.liveAlert) soon();
    });
    source.addEventListener("resync", soon);
  }

  connect();
})();
