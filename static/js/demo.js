// The memory demo panel beside a chat (templates/chat/_demo_panel.html): what each turn recalled
// and why, and what the background worker changed, live over /ws/chat/<session>/demo/
// (chat/demo_consumer.py). Text goes in with textContent only: memories and messages are user text.
(function () {
  "use strict";
  const panel = document.getElementById("demo-panel");
  const toggle = document.getElementById("demo-toggle");
  if (!panel || !toggle) return;
  const style = document.createElement("link");
  style.rel = "stylesheet";
  style.href = panel.dataset.css;
  document.head.appendChild(style);
  const statusLine = panel.querySelector("[data-demo-status]");
  const lists = {
    recalls: panel.querySelector("[data-demo-list=recalls]"),
    changes: panel.querySelector("[data-demo-list=changes]"),
  };
  const empties = {
    recalls: panel.querySelector("[data-demo-empty=recalls]"),
    changes: panel.querySelector("[data-demo-empty=changes]"),
  };
  const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + panel.dataset.wsPath;
  const STORE_KEY = "engram.demo";
  const MAX_ITEMS = 30;
  // Close codes of a refusal (core/websockets.py): say why and do not reconnect.
  const REFUSALS = {
    4401: "You are signed out: sign in again to see the demo.",
    4403: "The memory demo is not open to you for this chat.",
    4404: "This chat no longer exists.",
  };

  let socket = null;
  let retryDelay = 500;
  let retryTimer = null;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clock(epoch) {
    if (!epoch) return "";
    return new Date(epoch * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function score(value) {
    return Number(value || 0).toFixed(3);
  }

  function setStatus(text) {
    statusLine.textContent = text;
  }

  function hitItem(hit, className) {
    const item = el("li", className);
    if (hit.forgotten) {
      item.appendChild(el("span", "demo-hit-text muted", "(forgotten: its words were removed)"));
    } else {
      item.appendChild(el("span", "demo-hit-text", hit.text));
    }
    if (hit.type) item.appendChild(el("span", "demo-type", hit.type));
    const why = el("span", "demo-why");
    why.appendChild(el("span", "demo-score", "score " + score(hit.score)));
    if (hit.rule) why.appendChild(el("span", "demo-rule", hit.rule));
    item.appendChild(why);
    return item;
  }

  function recallItem(frame) {
    const item = el("li", "demo-turn");
    item.dataset.turn = frame.turn_id;
    const query = el("p", "demo-query");
    query.appendChild(el("span", "demo-label", "Turn: "));
    query.appendChild(el("span", "demo-query-text", frame.query || "(words removed)"));
    item.appendChild(query);
    const meta = [frame.mode ? "search: " + frame.mode : "", frame.mode === "profile" ? "" : "cut " + score(frame.cut), clock(frame.at)];
    item.appendChild(el("p", "demo-meta muted", meta.filter(Boolean).join(" · ")));
    if (frame.memories.length) {
      const hits = el("ul", "demo-hits");
      hits.setAttribute("aria-label", "Recalled into the prompt");
      frame.memories.forEach((hit) => hits.appendChild(hitItem(hit, "demo-hit")));
      item.appendChild(hits);
    } else {
      item.appendChild(el("p", "demo-none muted", "Nothing recalled: no memory scored above the cut."));
    }
    if (frame.near_misses.length) {
      item.appendChild(el("p", "demo-near-title muted", "Just missed:"));
      const near = el("ul", "demo-near");
      frame.near_misses.forEach((hit) => near.appendChild(hitItem(hit, "demo-hit demo-missed")));
      item.appendChild(near);
    }
    return item;
  }

  function changeItem(frame) {
    const decision = String(frame.decision || "");
    const item = el("li", "demo-change demo-decision-" + decision.replace(/[^a-z-]/g, ""));
    item.appendChild(el("span", "demo-decision", decision));
    const text = frame.text || "(words removed) memory " + String(frame.memory_id || "").slice(-6);
    item.appendChild(el("span", "demo-change-text", text));
    const about = [frame.memory_type, "by " + frame.actor, frame.reason, clock(frame.at)];
    item.appendChild(el("span", "demo-change-meta muted", about.filter(Boolean).join(" · ")));
    return item;
  }

  function add(kind, item) {
    const list = lists[kind];
    if (kind === "recalls") {
      const same = Array.from(list.children).find((node) => node.dataset.turn === item.dataset.turn);
      if (same) {
        list.replaceChild(item, same);
        return;
      }
    }
    list.insertBefore(item, list.firstChild); // newest first: the latest is in view
    while (list.children.length > MAX_ITEMS) list.removeChild(list.lastChild);
    empties[kind].hidden = true;
  }

  function clear() {
    Object.keys(lists).forEach((kind) => {
      lists[kind].replaceChildren();
      empties[kind].hidden = false;
    });
  }

  function onFrame(frame) {
    if (frame.type === "snapshot") {
      clear();
      (frame.recalls || []).forEach((recall) => add("recalls", recallItem(recall)));
      (frame.changes || []).forEach((change) => add("changes", changeItem(change)));
    } else if (frame.type === "recall") {
      add("recalls", recallItem(frame));
    } else if (frame.type === "change") {
      add("changes", changeItem(frame));
    }
  }

  function connect() {
    clearTimeout(retryTimer);
    setStatus("Connecting…");
    const ws = new WebSocket(wsUrl);
    socket = ws;
    ws.addEventListener("open", () => {
      retryDelay = 500;
      setStatus("Live");
      panel.classList.add("is-live");
    });
    ws.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (frame && typeof frame === "object") onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      panel.classList.remove("is-live");
      if (socket !== ws) return; // closed on purpose (turned off)
      socket = null;
      if (REFUSALS[event.code]) {
        setStatus(REFUSALS[event.code]);
        return;
      }
      setStatus("Connection lost; reconnecting…");
      retryTimer = setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    });
  }

  function setOn(on) {
    panel.hidden = !on;
    toggle.setAttribute("aria-pressed", on ? "true" : "false");
    toggle.textContent = on ? "Hide memory demo" : "Memory demo";
    try {
      if (on) localStorage.setItem(STORE_KEY, "on");
      else localStorage.removeItem(STORE_KEY);
    } catch (err) {
      // Storage may be off (private mode): the toggle still works for this page.
    }
    if (on) {
      if (!socket) connect();
      return;
    }
    clearTimeout(retryTimer);
    if (socket) {
      const ws = socket;
      socket = null;
      ws.close();
    }
    setStatus("Off");
  }

  toggle.addEventListener("click", () => setOn(panel.hidden));
  let remembered = false;
  try {
    remembered = localStorage.getItem(STORE_KEY) === "on";
  } catch (err) {
    remembered = false;
  }
  if (remembered) setOn(true);
})();
