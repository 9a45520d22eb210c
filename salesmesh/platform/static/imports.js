// Import progress page: poll the run's JSON progress and update the counters; reload into the report
// when the run has finished. Without JavaScript the page refreshes itself (a <noscript> meta refresh).
(function () {
  "use strict";
  var box = document.querySelector("[data-import-progress]");
  if (!box) return;
  var url = box.getAttribute("data-import-progress");
  var bar = box.querySelector("progress");
  // Reload when the page would look different: finished, phase changed, or stalled (resume button).
  var phase = box.getAttribute("data-phase") || "";
  var stalled = box.getAttribute("data-stalled") === "1";
  function set(name, value) {
    var el = box.querySelector('[data-field="' + name + '"]');
    if (el) el.textContent = String(value);
  }
  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (p) {
        set("processed", p.processed); set("total", p.total);
        set("created", p.created); set("duplicates", p.duplicates); set("errors", p.errors);
        if (bar) bar.value = p.percent;
        if (p.finished || (p.phase || "") !== phase || p.stalled !== stalled) {
          window.location.reload();
          return;
        }
        window.setTimeout(poll, 1500);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1000);
})();
