// Switchyard console: what htmx does not do by itself.
//
// - Every request htmx makes carries the page's CSRF token (the server refuses a write
//   without it).
// - The live stream: server-sent events relayed from WatchConfig. Each change refreshes
//   the parts of the page that show what it touched (elements whose data-live names
//   "kind:key" or the kind alone); a change nothing on the page shows reveals the page's
//   "new items" notice instead. The indicator says whether the stream is up, and a
//   stream that falls silent is reopened where it left off.
// - "/" focuses the search box; refusals htmx would drop are shown.
(function () {
  "use strict";

  const SILENT_MS = 35000; // three missed progress messages (sent every 10 s)
  const FEED_ITEMS = 12;

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  document.addEventListener("htmx:configRequest", (event) => {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
  });

  // htmx leaves error responses unswapped: show what the server said.
  document.addEventListener("htmx:responseError", (event) => {
    const xhr = event.detail.xhr;
    const text = new DOMParser().parseFromString(xhr.responseText || "", "text/html").body.textContent;
    toast((text || "").trim() || `The console answered ${xhr.status}.`);
  });
  document.addEventListener("htmx:sendError", () => {
    toast("The console did not answer: is the server running?");
  });

  function toast(message) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
    clearTimeout(box.timer);
    box.timer = setTimeout(() => { box.hidden = true; }, 8000);
  }

  document.addEventListener("keydown", (event) => {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    const search = document.querySelector("[data-search]");
    if (!search) return;
    event.preventDefault();
    search.focus();
    search.select();
  });

  // --- the live stream ------------------------------------------------------------

  let revision = 0;
  let resumeFrom = ""; // the last event id: where a new stream resumes
  let source = null;
  let heard = 0;
  const seen = new Set();

  function setState(state, text) {
    const indicator = document.getElementById("live");
    if (!indicator) return;
    indicator.dataset.state = state;
    indicator.textContent = text;
  }

  function showRevision(number) {
    if (number <= revision) return;
    revision = number;
    document.body.dataset.revision = String(number);
    const shown = document.getElementById("revision-number");
    if (shown) shown.textContent = String(number);
  }

  function refresh(change) {
    const names = [`${change.kind}:${change.key}`, change.kind];
    let shown = false;
    for (const element of document.querySelectorAll("[data-live]")) {
      const wants = element.dataset.live.split(/\s+/);
      if (!names.some((name) => wants.includes(name))) continue;
      if (wants.includes(names[0])) shown = true;
      // Not htmx.trigger: its events bubble, and a row's would refresh the whole table
      // around it too. Each element that shows the change refreshes itself.
      element.dispatchEvent(new Event("live"));
    }
    if (!shown) {
      for (const area of document.querySelectorAll("[data-news]")) {
        if (!area.dataset.news.split(/\s+/).includes(change.kind)) continue;
        const notice = area.querySelector("[data-news-notice]");
        if (notice && change.action === "create") notice.hidden = false;
      }
    }
  }

  function addToFeed(change) {
    const feed = document.getElementById("feed");
    if (!feed) return;
    const empty = feed.querySelector(".empty");
    if (empty) empty.remove();
    const item = document.createElement("li");
    const where = change.environment ? ` in ${change.environment}` : "";
    const label = `${change.kind.replace("_", " ")} ${change.key}${where}`;
    if (change.kind === "config") {
      const link = document.createElement("a");
      link.href = `/keys/${encodeURIComponent(change.key)}`;
      link.textContent = label;
      item.append(`r${change.revision} `, link, ` ${change.action}`);
    } else {
      item.textContent = `r${change.revision} ${label} ${change.action}`;
    }
    item.dataset.revision = String(change.revision);
    feed.prepend(item);
    while (feed.children.length > FEED_ITEMS) feed.lastElementChild.remove();
  }

  function onChange(event) {
    heard = Date.now();
    resumeFrom = event.lastEventId || resumeFrom;
    const change = JSON.parse(event.data);
    const id = `${change.revision}/${change.kind}/${change.key}/${change.environment}`;
    if (seen.has(id)) return; // a resumed stream replays its last revision whole
    seen.add(id);
    showRevision(change.revision);
    refresh(change);
    addToFeed(change);
  }

  function connect() {
    const from = resumeFrom || document.body.dataset.revision || "";
    const url = from ? `/live?from=${encodeURIComponent(from)}` : "/live";
    source = new EventSource(url);
    heard = Date.now();
    source.addEventListener("open", () => {
      heard = Date.now();
      setState("live", "live");
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        setState("offline", "offline: reload the page");
      } else {
        setState("reconnecting", "reconnecting…");
      }
    });
    source.addEventListener("progress", (event) => {
      heard = Date.now();
      resumeFrom = event.lastEventId || resumeFrom;
      setState("live", "live");
      showRevision(JSON.parse(event.data).revision);
    });
    source.addEventListener("change", onChange);
    source.addEventListener("resync", () => {
      // The history no longer reaches back to where this page was: read it again.
      window.location.reload();
    });
    source.addEventListener("signed-out", () => {
      source.close();
      window.location.assign("/sign-in?expired=1");
    });
  }

  function watchdog() {
    if (!source || Date.now() - heard < SILENT_MS) return;
    // Silent for too long: the connection is dead without the browser knowing.
    source.close();
    setState("reconnecting", "reconnecting…");
    connect();
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (document.body.dataset.live !== "on") return;
    revision = Number(document.body.dataset.revision || 0);
    connect();
    setInterval(watchdog, 5000);
  });
})();
