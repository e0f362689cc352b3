// The web board's own script: live updates over Server-Sent Events, lease countdowns,
// and with --write, moving cards (drag and drop, or the task page's form).
(function () {
  "use strict";
  var body = document.body;
  var state = document.getElementById("live-state");
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var refreshing = false, again = false;
  // the board's time less the browser's: leases count down by the board's clock (the
  // server's, KANBAN_NOW too), not by a browser clock that may be set otherwise
  var skew = 0;

  function boardTime() {
    var live = document.getElementById("live"), now = live && Number(live.dataset.now);
    if (now) { skew = now - Date.now(); }
  }

  function notice(text) {
    var box = document.getElementById("notice");
    box.textContent = text;
    box.hidden = !text;
  }

  function refresh() {
    var url = body.dataset.refresh;
    if (!url) { return; }
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(url, {credentials: "same-origin", cache: "no-store"}).then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("live"), old = document.getElementById("live");
        if (fresh && old) { old.replaceWith(document.importNode(fresh, true)); boardTime(); wire(); tick(); }
      })
      .finally(function () { refreshing = false; if (again) { again = false; refresh(); } });
  }

  function listen() {
    if (!window.EventSource) { return; }
    var source = new EventSource("/events?since=" + encodeURIComponent(body.dataset.cursor || ""));
    source.onopen = function () { state.textContent = "live"; state.className = "live on"; };
    source.onerror = function () { state.textContent = "reconnecting…"; state.className = "live off"; };
    source.addEventListener("change", function (event) {
      body.dataset.cursor = event.lastEventId;
      refresh();
    });
  }

  function left(ms) {
    if (ms <= 0) { return "lease expired"; }
    var s = Math.floor(ms / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return (h ? h + "h " : "") + m + "m " + String(s % 60).padStart(2, "0") + "s left";
  }

  function tick() {
    document.querySelectorAll(".lease[data-until]").forEach(function (el) {
      var ms = Date.parse(el.dataset.until) - (Date.now() + skew);
      el.textContent = left(ms);
      el.classList.toggle("expired", ms <= 0);
    });
  }

  function move(task, column, reason, force) {
    var form = new URLSearchParams();
    form.append("task", task); form.append("column", column);
    if (reason) { form.append("reason", reason); }
    if (force) { form.append("force", "1"); }
    return fetch("/move", {method: "POST", body: form, credentials: "same-origin",
                           headers: {"X-CSRF-Token": csrf}})
      // an answer that is not the board's JSON (a revoked token's 401, a bad Host's 400) is
      // text: said as it is, where r.json() failed and the page said nothing at all
      .then(function (r) {
        return r.text().then(function (text) {
          var doc;
          try { doc = JSON.parse(text); } catch (e) { doc = {error: text.trim() || "HTTP " + r.status}; }
          return {ok: r.ok, doc: doc};
        });
      })
      .then(function (res) {
        if (res.ok) { notice(""); refresh(); return; }
        // the error's sentence and its hint ("did you mean 'done'?"), which was dropped
        var said = (res.doc.error || "the move failed") + (res.doc.hint ? " (" + res.doc.hint + ")" : "");
        if (res.doc.code === "conflict" && !force && window.confirm(said + "\n\nMove it anyway?")) {
          return move(task, column, reason, true);
        }
        notice(said);
      }, function () { notice("the move failed: the board did not answer (is kanban serve running?)"); });
  }

  function wire() {
    if (body.dataset.write !== "yes") { return; }
    document.querySelectorAll(".card[draggable]").forEach(function (card) {
      card.addEventListener("dragstart", function (e) { e.dataTransfer.setData("text/plain", card.dataset.id); });
    });
    document.querySelectorAll(".column").forEach(function (column) {
      column.addEventListener("dragover", function (e) { e.preventDefault(); column.classList.add("drop"); });
      column.addEventListener("dragleave", function () { column.classList.remove("drop"); });
      column.addEventListener("drop", function (e) {
        e.preventDefault(); column.classList.remove("drop");
        var task = e.dataTransfer.getData("text/plain"), to = column.dataset.status, reason = null;
        if (to === "in_progress") { notice("a task reaches in progress only by a claim"); return; }
        if (to === "blocked") { reason = window.prompt("Why is it blocked?"); if (!reason) { return; } }
        move(task, to, reason, false);
      });
    });
    var form = document.getElementById("move");
    if (form && !form.dataset.wired) {
      form.dataset.wired = "yes";
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        move(form.task.value, form.column.value, form.reason.value, form.force.checked);
      });
    }
  }

  boardTime(); wire(); tick(); listen();
  window.setInterval(tick, 1000);
})();
