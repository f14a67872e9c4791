// Engram chat client: one WebSocket per open chat page. Every piece of text goes into the page
// with textContent, never innerHTML, so nothing a user or a memory says can become markup.
(function () {
  "use strict";
  const root = document.getElementById("chat");
  if (!root) return;
  const log = document.getElementById("log");
  const statusLine = document.getElementById("status");
  const form = document.getElementById("composer");
  const input = document.getElementById("message");
  const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + root.dataset.wsPath;

  // Close codes the server uses for a refusal (chat/consumers.py, core/websockets.py).
  const REFUSALS = {
    4401: {
      text: "You are signed out. Sign in again to continue.",
      link: "Sign in",
      href: () => root.dataset.loginUrl + "?next=" + encodeURIComponent(location.pathname),
    },
    4403: {
      text: "This chat is not open to you here (you may have signed in as someone else).",
      link: "Your chats",
      href: () => root.dataset.homeUrl,
    },
    4404: {
      text: "This chat no longer exists: it was deleted or it expired.",
      link: "Your chats",
      href: () => root.dataset.homeUrl,
    },
  };

  // Error frames after which the chat cannot go on here (the close code they stand for).
  const ENDS_THE_CHAT = { chat_deleted: 4404, chat_moved: 4403 };

  let socket = null;
  let stopped = false;
  let retryDelay = 500;
  let everConnected = false;
  const outbox = new Map(); // client_id -> text, until the server says the turn started
  const bubbles = new Map(); // turn_id -> assistant text element, while the turn runs
  const running = new Set(); // turn_ids started and not yet done, as far as this tab knows
  const stallMs = Number(root.dataset.stallMs) || 15000;
  let stallTimer = null;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
    window.scrollTo(0, document.body.scrollHeight);
  }

  function addMessage(role, text, turnId) {
    const wrap = el("div", "msg msg-" + role);
    if (turnId) wrap.dataset.turn = turnId;
    const body = el("div", "msg-text", text);
    wrap.appendChild(body);
    log.appendChild(wrap);
    scrollDown();
    return body;
  }

  function setStatus(text) {
    statusLine.textContent = text;
  }

  function showError(message) {
    const note = el("div", "msg msg-error", message);
    note.setAttribute("role", "alert");
    log.appendChild(note);
    scrollDown();
  }

  function memoriesUsed(memories) {
    const details = el("details", "memories-used");
    details.appendChild(el("summary", "", "Memories used (" + memories.length + ")"));
    const list = el("ul");
    for (const memory of memories) {
      const item = el("li");
      const link = el("a", "", memory.text);
      link.href = memory.link;
      item.appendChild(link);
      const s = memory.scores; // sent to staff only
      if (s && memory.why && memory.ranked_by !== "score") {
        // Pinned and profile memories are not ranked by a search: their scores would read 0.00.
        item.appendChild(el("span", "scores", " " + memory.why));
      } else if (s) {
        const scores = " final " + s.final.toFixed(2) + " · vector " + s.vector.toFixed(2) +
          " · keyword " + s.keyword.toFixed(2) + " · recency " + s.recency.toFixed(2);
        item.appendChild(el("span", "scores", scores));
      }
      list.appendChild(item);
    }
    details.appendChild(list);
    return details;
  }

  function showTitle(title) {
    // The first message named the chat (chat/titles.py).
    const heading = document.getElementById("chat-title-text");
    if (heading) heading.textContent = title;
    const field = document.querySelector(".chat-title input[name=title]");
    if (field) field.value = title;
    document.title = title + " · Engram";
  }

  function onFrame(frame) {
    switch (frame.type) {
      case "turn_started": {
        // Ours: the bubble is already on screen. Another tab's: show the user's message here too.
        const mine = document.querySelector('[data-client="' + CSS.escape(frame.client_id) + '"]');
        outbox.delete(frame.client_id);
        if (mine) mine.removeAttribute("data-client");
        else addMessage("user", frame.text);
        bubbles.set(frame.turn_id, addMessage("assistant", "", frame.turn_id));
        running.add(frame.turn_id);
        if (frame.title) showTitle(frame.title);
        setStatus("Engram is answering…");
        break;
      }
      case "delta": {
        const bubble = bubbles.get(frame.turn_id);
        if (bubble) { bubble.textContent += frame.text; scrollDown(); }
        break;
      }
      case "tool":
        setStatus(frame.cached ? "Used a cached result of " + frame.name + "…" : "Calling " + frame.name + "…");
        break;
      case "done": {
        let bubble = bubbles.get(frame.turn_id);
        if (!bubble) bubble = addMessage("assistant", "", frame.turn_id);
        bubble.textContent = frame.text;
        if (frame.memories && frame.memories.length) bubble.parentNode.appendChild(memoriesUsed(frame.memories));
        bubbles.delete(frame.turn_id);
        running.delete(frame.turn_id);
        setStatus("");
        scrollDown();
        break;
      }
      case "error":
        if (frame.client_id) outbox.delete(frame.client_id);
        if (frame.turn_id) { bubbles.delete(frame.turn_id); running.delete(frame.turn_id); }
        showError(frame.message);
        setStatus("");
        if (ENDS_THE_CHAT[frame.code]) {
          stop(ENDS_THE_CHAT[frame.code]);
          if (socket) socket.close();
        }
        break;
      default:
        break;
    }
  }

  async function catchUp() {
    // After a reconnect, the server's history is the truth: a turn may have finished meanwhile.
    try {
      const response = await fetch(root.dataset.logUrl, { credentials: "same-origin" });
      if (response.ok) {
        log.innerHTML = await response.text(); // server-rendered, autoescaped by Django templates
        bubbles.clear(); // their elements are gone
        for (const turnId of [...running]) {
          // Finished on the server: its reply is in the history. Still running: a fresh bubble for
          // the rest of the stream (its `done` brings the whole text).
          if (log.querySelector('.msg-assistant[data-turn="' + CSS.escape(turnId) + '"]')) running.delete(turnId);
          else bubbles.set(turnId, addMessage("assistant", "", turnId));
        }
        if (!running.size) setStatus("");
        for (const [clientId, text] of outbox) addMessage("user", text).parentNode.dataset.client = clientId;
        scrollDown();
      }
    } catch (err) { /* keep what is on screen */ }
  }

  function watchForStall() {
    // A frame can be lost on its way here (the Redis channel layer drops one now and then when other
    // sockets close at the same moment): a running turn that goes quiet re-reads the history.
    clearTimeout(stallTimer);
    stallTimer = running.size ? setTimeout(resync, stallMs) : null;
  }

  async function resync() {
    await catchUp();
    watchForStall();
  }

  function connect() {
    socket = new WebSocket(wsUrl);
    socket.addEventListener("open", async () => {
      retryDelay = 500;
      setStatus("");
      if (everConnected) await catchUp();
      everConnected = true;
      for (const [clientId, text] of outbox) socket.send(JSON.stringify({ type: "message", text, client_id: clientId }));
    });
    socket.addEventListener("message", (event) => {
      try { onFrame(JSON.parse(event.data)); } catch (err) { /* ignore a frame we cannot read */ }
      watchForStall();
    });
    socket.addEventListener("close", (event) => {
      if (stopped) return;
      if (REFUSALS[event.code]) {
        stop(event.code);
        return;
      }
      if (event.code === 1009) {
        // The server refused a message as too large: drop it, or every reconnect would resend it.
        for (const [clientId, text] of outbox) {
          if (text.length > input.maxLength) outbox.delete(clientId);
        }
        showError("That message was too large to send (at most " + input.maxLength + " characters).");
      }
      setStatus("Connection lost; reconnecting…");
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    });
  }

  function stop(code) {
    // Retrying cannot help: say why, and stop.
    const refusal = REFUSALS[code];
    stopped = true;
    clearTimeout(stallTimer);
    setStatus(refusal.text + " ");
    const link = el("a", "", refusal.link);
    link.href = refusal.href();
    statusLine.appendChild(link);
    input.disabled = true;
    form.querySelector("button").disabled = true;
  }

  function send() {
    const text = input.value.trim();
    if (!text || stopped) return;
    const clientId = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());
    outbox.set(clientId, text);
    addMessage("user", text).parentNode.dataset.client = clientId;
    input.value = "";
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "message", text, client_id: clientId }));
    } else {
      setStatus("Not connected; your message will be sent when the connection is back.");
    }
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); send(); });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); send(); }
  });
  connect();
  scrollDown();
})();
