// Memory inspector: TTL countdowns and the live feed. Everything works without this script (the
// server renders a static "expires in 3 h 12 min" and full pages); it only adds liveliness.
// The feed inserts HTML the server rendered and escaped (templates/inspector/_feed_entry.html); this
// script never builds markup from memory text itself.
(function () {
  "use strict";

  // --- TTL countdowns -------------------------------------------------------------------------
  // Each [data-ttl-seconds] holds the seconds left when the server rendered it. We count from the
  // moment we first see the element (htmx swaps in new ones), with the monotonic clock.
  const firstSeen = new WeakMap();

  // Like the server's text (two largest units), plus seconds below a day so the ticking shows:
  // "6 d 23 h", "1 h 59 min 58 s", "4 min 2 s", "9 s".
  function formatDuration(total) {
    const d = Math.floor(total / 86400);
    const h = Math.floor((total % 86400) / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    if (d > 0) return h > 0 ? d + " d " + h + " h" : d + " d";
    if (h > 0) return h + " h " + m + " min " + s + " s";
    if (m > 0) return m + " min " + s + " s";
    return s + " s";
  }

  function tick() {
    const now = performance.now();
    for (const el of document.querySelectorAll("[data-ttl-seconds]")) {
      if (!firstSeen.has(el)) firstSeen.set(el, now);
      const ttl = parseInt(el.dataset.ttlSeconds, 10);
      if (!Number.isFinite(ttl)) continue;
      const left = Math.round(ttl - (now - firstSeen.get(el)) / 1000);
      if (left <= 0) {
        el.textContent = "expired";
        el.classList.add("ttl-expired");
      } else {
        el.textContent = "expires in " + formatDuration(left);
      }
    }
  }

  tick();
  setInterval(tick, 1000);

  // --- Live feed ------------------------------------------------------------------------------
  const MAX_ENTRIES = 100;
  let refreshTimer = null;

  // Every panel that shows counts (the memory table with its filters and page, the user's header
  // counts and type chips, the overview's totals, users and queue) re-fetches itself on
  // "memories-changed" (hx-trigger). A burst of changes (an extraction adds several memories)
  // refreshes them once.
  function refreshMemoryTable() {
    if (!window.htmx || !document.querySelector("[hx-trigger*='memories-changed']")) return;
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(function () {
      window.htmx.trigger(document.body, "memories-changed");
    }, 700);
  }

  // On a memory page: a newer version than the one shown means someone else changed it. Our own
  // changes swap the panel in too, so look again after the swap has had time to land.
  function checkStale(entry) {
    const panel = document.getElementById("memory-panel");
    const notice = document.querySelector("[data-stale-notice]");
    if (!panel || !notice || !entry) return;
    const version = parseInt(entry.dataset.version, 10);
    setTimeout(function () {
      const shown = parseInt(document.getElementById("memory-panel").dataset.version, 10);
      if (version > shown) notice.hidden = false;
    }, 1500);
  }

  function startFeed(panel) {
    const list = panel.querySelector("[data-feed-list]");
    const status = panel.querySelector("[data-feed-status]");
    const empty = panel.querySelector("[data-feed-empty]");
    const scopeLabel = status.textContent;
    const query = panel.dataset.feedQuery;
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
      panel.dataset.feedPath + (query ? "?" + query : "");
    let delay = 1000;

    function setStatus(text, state) {
      status.textContent = text;
      status.classList.toggle("is-live", state === "live");
      status.classList.toggle("is-down", state === "down");
    }

    function connect() {
      const socket = new WebSocket(url);
      socket.addEventListener("open", function () {
        delay = 1000;
        setStatus(scopeLabel + " · live", "live");
      });
      socket.addEventListener("message", function (event) {
        if (typeof event.data !== "string") return;
        list.insertAdjacentHTML("afterbegin", event.data);
        const entry = list.firstElementChild;
        if (entry) entry.classList.add("is-new");
        if (empty) empty.hidden = true;
        while (list.children.length > MAX_ENTRIES) list.lastElementChild.remove();
        refreshMemoryTable();
        checkStale(entry);
      });
      socket.addEventListener("close", function (event) {
        // A refusal (signed out, no permission) will not go away by retrying.
        if (event.code === 4401) { setStatus("Signed out · sign in again to see live changes", "down"); return; }
        if (event.code === 4403) { setStatus("Live changes are not available to this account", "down"); return; }
        setStatus("Disconnected · retrying", "down");
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 30000);
      });
    }

    connect();
  }

  for (const panel of document.querySelectorAll("[data-feed-path]")) startFeed(panel);
})();
