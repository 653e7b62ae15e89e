// A contour-race room: the socket, phases and timers (the server's clock), the racers'
// progress, the outline editor, submission and the results overlay.

import { OutlineEditor, drawReference } from "./editor.js";

const root = document.getElementById("race");
const $ = (role) => root.querySelector(`[data-role=${role}]`);
const button = (action) => root.querySelector(`[data-action=${action}]`);
const token = root.dataset.token;

const PROGRESS = {
  waiting: ["○", "waiting"],
  drawing: ["✎", "drawing"],
  submitted: ["✓", "submitted"],
  timed_out: ["⏱", "out of time"],
};

let socket = null;
let delay = 1000;
let offset = 0; // server clock minus local clock, ms
let current = null; // last payload: {view, names, meta}
let roundKey = null;
let imageUrl = null;
let submitting = false;
let reportedProgress = false;
let gone = false;

const editor = new OutlineEditor($("canvas"), {
  onChange: () => {
    describe();
    saveDraft();
  },
  onFirstStroke: () => {
    if (current?.view.phase === "drawing" && !reportedProgress) {
      reportedProgress = true;
      send({ type: "progress" });
    }
  },
});

function send(message) {
  if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

// Broadcasts are the same for everyone; the page knows which participant it is.
const myId = root.dataset.player;
const isMe = (p) => p.you || p.player_id === myId;

function me() {
  return current?.view.players.find(isMe) ?? null;
}

function nameOf(p) {
  return current.names[p.player_id] ?? (p.is_ghost ? "Ghost" : "Racer");
}

// -- drafts survive a reload or a dropped connection --------------------------------------------
function draftKey() {
  return `race:${token}:${current?.view.round?.round_no ?? 0}`;
}

function saveDraft() {
  if (current?.view.phase !== "drawing" || me()?.progress === "submitted") return;
  try {
    sessionStorage.setItem(draftKey(), JSON.stringify({ points: editor.points, closed: editor.closed }));
  } catch {
    /* storage full or disabled: the draft only lives in memory */
  }
}

function loadDraft() {
  try {
    return JSON.parse(sessionStorage.getItem(draftKey()) || "null");
  } catch {
    return null;
  }
}

// -- rendering -----------------------------------------------------------------------------------
// The last thing the server told this player (a notice, a rejected outline); it stays in the
// status line until the room moves to another phase, so a re-render cannot hide it.
let notice = "";
let noticePhase = null;

function setNotice(text) {
  notice = text;
  noticePhase = current?.view.phase ?? null;
  describe();
}

function describe() {
  const n = editor.points.length;
  let text = n ? `${n} point${n === 1 ? "" : "s"}, ${editor.isClosed() ? "closed" : "not closed yet"}.` : "No outline yet.";
  if (current?.view.phase === "drawing" && me()?.progress === "submitted") {
    text = "Submitted. Waiting for the others…";
  }
  if (notice && noticePhase !== (current?.view.phase ?? null)) notice = "";
  if (notice) text = `${notice} ${text}`;
  if (editor.selected !== null) text += ` Point ${editor.selected + 1} selected: arrows move it, Escape releases it.`;
  if (editor.cursor && document.activeElement === editor.canvas) {
    text += ` Cursor at ${Math.round(editor.cursor[0])}, ${Math.round(editor.cursor[1])}.`;
  }
  $("draw-status").textContent = text;
  const drawing = current?.view.phase === "drawing" && me()?.progress !== "submitted";
  button("submit").disabled = !(drawing && n >= 3) || submitting;
}

function renderPlayers() {
  const list = $("players");
  list.replaceChildren(
    ...current.view.players.map((p) => {
      const li = document.createElement("li");
      li.dataset.progress = p.progress;
      const [icon, word] = PROGRESS[p.progress] ?? ["?", p.progress];
      const tags = [];
      if (isMe(p)) tags.push("you");
      if (p.is_ghost && !nameOf(p).includes("replay")) tags.push("ghost");
      if (!p.connected && !p.is_ghost) tags.push(p.left ? "left" : "offline");
      if (current.view.phase === "lobby") tags.push(p.ready ? "ready" : "not ready");
      if (current.view.phase === "results" && !p.is_ghost && p.ready) tags.push("ready for the next round");
      li.innerHTML = `<span class="race-icon" aria-hidden="true"></span> <span class="race-name"></span> <span class="race-state"></span>`;
      li.querySelector(".race-icon").textContent = icon;
      li.querySelector(".race-name").textContent = nameOf(p) + (tags.length ? ` (${tags.join(", ")})` : "");
      li.querySelector(".race-state").textContent =
        current.view.phase === "lobby" ? "" : p.left && p.progress !== "submitted" ? "left the race" : word;
      return li;
    }),
  );
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = reject;
    img.src = url;
  });
}

async function renderReference(meta) {
  const box = $("reference");
  if (!meta?.reference_url) {
    box.hidden = true;
    return;
  }
  if (box.dataset.url === meta.reference_url) return;
  box.dataset.url = meta.reference_url;
  const img = await loadImage(meta.reference_url);
  box.hidden = false;
  const canvas = $("reference-canvas");
  canvas.height = Math.round((canvas.width * img.naturalHeight) / img.naturalWidth);
  drawReference(canvas, img, img.naturalWidth, img.naturalHeight, meta.reference_outline);
}

function renderResults() {
  const { view, meta } = current;
  const box = $("results");
  box.hidden = !(view.phase === "results");
  if (box.hidden) return;
  if (!view.scored) {
    $("results-reference").textContent = "Scoring…";
    $("ranking").replaceChildren();
    return;
  }
  const ref = view.reference === "gold" ? "the expert outline" : "the consensus of the other racers' outlines";
  let about = `Compared with ${ref} (Dice: 1 is a perfect match).`;
  const mine = me();
  if (mine?.progress === "submitted" && mine.dice == null) {
    about += " Nobody else has outlined this image yet, so there was nothing to score yours"
      + " against: it scores nothing now but counts toward the image's consensus.";
  }
  $("results-reference").textContent = about;
  $("legend-ref").textContent = view.reference === "gold" ? "expert outline" : "crowd consensus";
  const byId = Object.fromEntries(view.players.map((p) => [p.player_id, p]));
  $("ranking").replaceChildren(
    ...view.ranking.map(([pid, score], i) => {
      const p = byId[pid];
      const tr = document.createElement("tr");
      if (isMe(p)) tr.className = "is-you";
      const cells = [
        String(i + 1),
        nameOf(p) + (isMe(p) ? " (you)" : ""),
        p.dice == null ? "–" : p.dice.toFixed(2),
        p.elapsed_ms == null ? "–" : `${(p.elapsed_ms / 1000).toFixed(1)} s`,
        String(score),
      ];
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }),
  );
  editor.reference = meta.consensus_outline ?? null;
  editor.draw();
}

function overlay(text, showReady = false) {
  const box = $("overlay");
  box.hidden = !text;
  $("overlay-text").textContent = text || "";
  button("ready").hidden = !showReady;
}

async function enterRound(view, meta) {
  const key = `${view.round.round_no}:${view.round.image_id}`;
  if (roundKey === key) return;
  roundKey = key;
  reportedProgress = false;
  submitting = false;
  const own = view.players.find(isMe);
  if (imageUrl !== meta.image_url) {
    imageUrl = meta.image_url;
    const img = await loadImage(meta.image_url);
    editor.setImage(img, view.round.width, view.round.height);
  }
  if (own?.contour) {
    editor.reset(own.contour, true);
  } else {
    const draft = loadDraft();
    editor.reset(draft?.points ?? [], draft?.closed ?? false);
  }
}

async function apply(payload) {
  // Broadcasts leave out names and pictures unless they changed.
  payload.names ??= current?.names ?? {};
  payload.meta ??= current?.meta ?? {};
  const previousPhase = current?.view.phase ?? null;
  current = payload;
  const { view, meta } = payload;
  offset = view.server_time - Date.now();
  root.dataset.phase = view.phase;
  const mine = me();
  renderPlayers();
  $("phase").textContent = {
    lobby: "Waiting for racers",
    countdown: "Get ready",
    drawing: "Draw!",
    results: "Results",
    closed: "Race over",
  }[view.phase];
  if (meta?.structure) $("structure").textContent = meta.structure;
  await renderReference(meta);
  button("next").hidden = view.phase !== "results";
  button("next").disabled = view.phase === "results" && !!mine?.ready;
  if (view.phase === "lobby") {
    roundKey = null;
    editor.reset();
    editor.setLocked(true);
    const ready = mine?.ready;
    overlay(ready ? "Waiting for the others to be ready…" : "Press “I'm ready” when you are.", true);
    button("ready").textContent = ready ? "Not ready" : "I'm ready";
    button("ready").dataset.ready = String(!!ready);
  } else if (view.phase === "countdown") {
    overlay(`Outline the ${meta?.structure ?? view.round?.structure}. Starting soon…`);
    editor.setLocked(true);
  } else if (view.phase === "drawing") {
    overlay("");
    await enterRound(view, meta);
    const done = mine?.progress === "submitted" || mine?.progress === "timed_out";
    editor.setLocked(done || submitting);
    if (mine?.progress === "submitted") overlay("");
  } else if (view.phase === "results") {
    overlay("");
    if (previousPhase !== "results" && matchMedia("(max-width: 700px)").matches) {
      // On a phone the results sit below the canvas: bring them into view once.
      requestAnimationFrame(() => $("results").scrollIntoView({ block: "start" }));
    }
    await enterRound(view, meta);
    if (mine?.contour) editor.reset(mine.contour, true);
    editor.setLocked(true);
  } else if (view.phase === "closed") {
    overlay("This race is over.");
    editor.setLocked(true);
  }
  renderResults();
  if (view.phase !== "results") {
    editor.reference = null;
  }
  describe();
  tick();
}

function tick() {
  if (!current) return;
  const { view } = current;
  const now = Date.now() + offset;
  const until = view.phase === "countdown" ? view.countdown_ends_at : view.phase === "drawing" ? view.deadline_at : null;
  const timer = $("timer");
  if (until == null) {
    timer.textContent = "";
    return;
  }
  const left = Math.max(0, until - now);
  timer.textContent = `${Math.ceil(left / 1000)} s`;
  timer.dataset.low = String(view.phase === "drawing" && left < 10000);
}
setInterval(tick, 250);

// -- socket --------------------------------------------------------------------------------------
// Payloads are applied one at a time, in order, and one older than the last applied is dropped
// (view.seq counts the room's moves; broadcasts may overtake each other on the way).
let chain = Promise.resolve();
let lastSeq = -1;

function onMessage(event) {
  const data = JSON.parse(event.data);
  if (data.type === "you" || data.type === "room") {
    if (data.view && data.view.seq >= lastSeq) {
      lastSeq = data.view.seq;
      chain = chain.then(() => apply(data)).catch((error) => console.error(error));
    }
    for (const e of data.events ?? []) {
      if (e.kind === "notice") chain = chain.then(() => setNotice(e.message));
    }
  } else if (data.type === "private" && data.kind === "submission_rejected") {
    submitting = false;
    editor.setLocked(false);
    setNotice(`Not accepted: ${data.message}`);
  } else if (data.type === "error") {
    submitting = false;
    setNotice(data.message);
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/race/room/${token}/`);
  socket.addEventListener("open", () => {
    delay = 1000;
    lastSeq = -1; // a fresh snapshot follows
    root.dataset.connected = "true";
  });
  socket.addEventListener("message", onMessage);
  socket.addEventListener("close", (event) => {
    root.dataset.connected = "false";
    if (gone) return;
    if (event.code === 4401 || event.code === 4403) {
      overlay("This room is not available to you.");
      return;
    }
    overlay("Connection lost; reconnecting… (the round goes on)");
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 10000);
  });
}

// -- controls ------------------------------------------------------------------------------------
root.querySelector(".race-modes").addEventListener("click", (e) => {
  const mode = e.target.closest("[data-mode]")?.dataset.mode;
  if (!mode) return;
  editor.setMode(mode);
  for (const b of root.querySelectorAll("[data-mode]")) {
    const on = b.dataset.mode === mode;
    b.classList.toggle("is-on", on);
    b.setAttribute("aria-pressed", String(on));
  }
});
button("undo").addEventListener("click", () => editor.undo());
button("close").addEventListener("click", () => editor.close());
button("clear").addEventListener("click", () => editor.clear());
button("zoom-in").addEventListener("click", () => editor.zoomAt(1.25));
button("zoom-out").addEventListener("click", () => editor.zoomAt(1 / 1.25));
button("zoom-reset").addEventListener("click", () => editor.fit());
button("ready").addEventListener("click", () => {
  send({ type: button("ready").dataset.ready === "true" ? "unready" : "ready" });
});
button("submit").addEventListener("click", () => {
  if (editor.points.length < 3) return;
  submitting = true;
  editor.setLocked(true);
  describe();
  $("draw-status").textContent = "Submitting…";
  send({ type: "submit", points: editor.points, closed: editor.isClosed() });
});
button("next").addEventListener("click", () => {
  send({ type: "next" });
  button("next").disabled = true;
  setNotice("The next round starts when every racer here has asked for it.");
});
button("leave").addEventListener("click", () => {
  gone = true;
  send({ type: "leave" });
  setTimeout(() => location.assign(root.dataset.lobbyUrl), 150);
});

connect();
