// Match-three board: renders the server's public view, takes keyboard, mouse and touch input,
// animates clears and cascades, and sends moves through GameApi. The server decides everything
// (gold answers never reach this page); this module only shows and asks.

import { GameApi, csrfToken } from "./api.js";
import { Viewer } from "./viewer.js";

const root = document.getElementById("m3");
const boardEl = root.querySelector(".m3-board");
const live = root.querySelector("[data-role=live]");
const viewerEl = root.querySelector("[data-role=viewer]");
const goldDialog = root.querySelector("[data-role=gold-dialog]");
const endDialog = root.querySelector("[data-role=end-dialog]");
const ZERO = "00000000-0000-0000-0000-000000000000";
const imageUrl = (id) => root.dataset.imageUrl.replace(ZERO, id);
const thumbUrl = (id) => root.dataset.thumbUrl.replace(ZERO, id);
const HOLD_MS = 450;
const SWIPE_PX = 24;
const reducedMotion = matchMedia("(prefers-reduced-motion: reduce)").matches;
const wait = (ms) => new Promise((resolve) => setTimeout(resolve, reducedMotion ? 0 : ms));

let view = null;
let cursor = { r: 0, c: 0 };
let selected = null; // tile id chosen for judging or as the first half of a swap
const shownAt = new Map(); // tile id -> when it first appeared on this screen
const positions = new Map(); // tile id -> row, for fall animations
let animating = Promise.resolve();

const viewer = new Viewer(viewerEl, { imageUrl });

const api = new GameApi({
  startUrl: root.dataset.startUrl,
  sessionUrl: root.dataset.sessionUrl,
  dataset: root.dataset.dataset,
  level: root.dataset.level,
  onResult: (data, batch) => {
    animating = animating.then(() => applyResult(data, batch)).finally(() => {
      if (!api.pending.length) root.dataset.busy = "false";
    });
  },
  onError: (message) => announce(message, true),
});

// ------------------------------------------------------------------------------ announcements
function announce(text, toast = false) {
  live.textContent = "";
  setTimeout(() => { live.textContent = text; }, 30);
  if (toast) showToast(text);
}

function showToast(text) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = document.createElement("div");
  item.className = "toast";
  item.textContent = text;
  box.append(item);
  setTimeout(() => item.remove(), 4000);
}

function className(index) {
  return view.classes[index]?.name ?? `class ${index + 1}`;
}

// ------------------------------------------------------------------------------ rendering
function tileAt(r, c) {
  return view?.board?.[r]?.[c] ?? null;
}

function findTile(id) {
  for (let r = 0; r < view.rows; r++) {
    for (let c = 0; c < view.cols; c++) {
      if (tileAt(r, c)?.tile_id === id) return { r, c };
    }
  }
  return null;
}

function pendingJudgements() {
  const map = new Map();
  for (const move of api.pending) if (move.type === "judge") map.set(move.tile, move.class_index);
  return map;
}

function gemSvg(cls, size = 60) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 20 20");
  svg.setAttribute("width", size);
  svg.setAttribute("height", size);
  svg.setAttribute("aria-hidden", "true");
  svg.classList.add("m3-gem");
  const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
  use.setAttribute("href", `#gem-${cls.shape}`);
  use.setAttribute("fill", cls.colour);
  svg.append(use);
  return svg;
}

function renderBoard() {
  const pending = pendingJudgements();
  const now = performance.now();
  boardEl.style.setProperty("--cols", view.cols);
  boardEl.style.setProperty("--rows", view.rows);
  boardEl.replaceChildren();
  for (let r = 0; r < view.rows; r++) {
    const row = document.createElement("div");
    row.setAttribute("role", "row");
    row.className = "m3-row";
    for (let c = 0; c < view.cols; c++) {
      const tile = tileAt(r, c);
      const cell = document.createElement("button");
      cell.type = "button";
      cell.setAttribute("role", "gridcell");
      cell.className = "m3-tile";
      cell.dataset.r = r;
      cell.dataset.c = c;
      cell.tabIndex = r === cursor.r && c === cursor.c ? 0 : -1;
      if (!tile) {
        cell.classList.add("is-empty");
        cell.setAttribute("aria-label", `Empty, row ${r + 1}, column ${c + 1}`);
        row.append(cell);
        continue;
      }
      cell.dataset.tile = tile.tile_id;
      cell.dataset.image = tile.image_id;
      if (!shownAt.has(tile.tile_id)) {
        shownAt.set(tile.tile_id, now);
        if (view && positions.size) cell.classList.add("is-new");
      }
      const before = positions.get(tile.tile_id);
      if (before !== undefined && before < r && !reducedMotion) {
        cell.style.setProperty("--fall", r - before);
        cell.classList.add("is-falling");
      }
      const gem = tile.gem ?? pending.get(tile.tile_id);
      const img = document.createElement("img");
      img.src = thumbUrl(tile.image_id);
      img.alt = "";
      img.draggable = false;
      img.className = "m3-thumb";
      cell.append(img);
      const where = `row ${r + 1}, column ${c + 1}`;
      if (gem !== undefined && gem !== null) {
        const cls = view.classes[gem];
        cell.classList.add("is-gem");
        if (tile.gem === null) cell.classList.add("is-pending");
        cell.style.setProperty("--cls", cls.colour);
        cell.append(gemSvg(cls));
        cell.setAttribute("aria-label", `${cls.name} gem (${cls.shape}), ${where}`);
      } else {
        cell.setAttribute("aria-label", `Image to judge, ${where}`);
      }
      if (selected === tile.tile_id) {
        cell.classList.add("is-selected");
        cell.setAttribute("aria-selected", "true");
      }
      row.append(cell);
    }
    boardEl.append(row);
  }
  positions.clear();
  for (let r = 0; r < view.rows; r++) {
    for (let c = 0; c < view.cols; c++) {
      const t = tileAt(r, c);
      if (t) positions.set(t.tile_id, r);
    }
  }
}

function renderHud() {
  const set = (name, value) => { root.querySelector(`[data-hud=${name}]`).textContent = value; };
  set("score", view.score);
  set("moves", view.moves_left);
  set("lives", "♥".repeat(Math.max(0, view.lives)) + ` ${view.lives}`);
  set("streak", view.streak);
  set("delayed", view.delayed_score);
  const goals = root.querySelector("[data-hud=goals]");
  goals.replaceChildren();
  const names = { clear_gems: "Gems cleared", judgements: "Images judged", score: "Score" };
  for (const [goal, target] of Object.entries(view.goals)) {
    if (!target) continue;
    const value = Math.min(view.progress[goal], target);
    const label = document.createElement("label");
    label.className = "m3-goal";
    label.textContent = `${names[goal]} ${value}/${target}`;
    const bar = document.createElement("progress");
    bar.max = target;
    bar.value = value;
    label.append(bar);
    if (value >= target) label.classList.add("is-done");
    goals.append(label);
  }
}

function render() {
  root.querySelector("[data-role=loading]").hidden = true;
  const active = document.activeElement;
  const hadFocus = !active || active === document.body || boardEl.contains(active);
  clampCursor();
  renderBoard();
  renderHud();
  if (hadFocus && !dialogOpen() && root.dataset.ready) focusCursor();
  else updateViewerForCursor();
}

function clampCursor() {
  cursor.r = Math.max(0, Math.min(view.rows - 1, cursor.r));
  cursor.c = Math.max(0, Math.min(view.cols - 1, cursor.c));
}

function cellEl(r, c) {
  return boardEl.querySelector(`[data-r="${r}"][data-c="${c}"]`);
}

function focusCursor() {
  boardEl.querySelectorAll(".m3-tile").forEach((el) => { el.tabIndex = -1; });
  const el = cellEl(cursor.r, cursor.c);
  if (el) {
    el.tabIndex = 0;
    el.focus({ preventScroll: false });
  }
  updateViewerForCursor();
}

function updateViewerForCursor() {
  const tile = tileAt(cursor.r, cursor.c);
  if (tile && matchMedia("(min-width: 900px)").matches) showLarge(tile);
}

function showLarge(tile) {
  const gem = tile.gem === null ? "not judged yet" : className(tile.gem);
  viewer.show(tile.image_id, `Tile at the cursor, large (${gem})`);
}

// ------------------------------------------------------------------------------ results
async function applyResult(data, batch) {
  const events = (data.results || []).flatMap((r) => (r.outcome === "applied" ? r.events : []));
  for (const r of data.results || []) {
    if (r.outcome === "rejected") announce(r.message, true);
  }
  let wave = 0;
  for (const event of events) {
    if (event.kind === "cleared") {
      wave += 1;
      const ids = new Set(event.tile_ids);
      boardEl.querySelectorAll(".m3-tile[data-tile]").forEach((el) => {
        if (ids.has(Number(el.dataset.tile))) el.classList.add("is-clearing");
      });
      floatText(event.multiplier > 1 ? `Combo ×${event.multiplier}! +${event.points}` : `+${event.points}`);
      announce(
        `${event.lines.map(([cls, len]) => `Line of ${len} ${className(cls)}`).join(", ")} cleared, ` +
          `plus ${event.points}${event.multiplier > 1 ? `, combo times ${event.multiplier}` : ""}.`,
      );
      await wait(wave === 1 ? 320 : 260);
    } else if (event.kind === "swap_reverted") {
      [event.tile_a, event.tile_b].forEach((id) => {
        boardEl.querySelector(`[data-tile="${id}"]`)?.classList.add("is-shake");
      });
      announce("No line there: the gems swap back.");
      await wait(300);
    }
  }
  view = data.view;
  render();
  for (const event of events) handleEvent(event);
  if (data.badges?.length) announce(`New badge: ${data.badges.join(", ")}!`, true);
  if (view.status !== "playing") showEnd();
}

function handleEvent(event) {
  switch (event.kind) {
    case "gold_correct":
      floatText(`Check passed +${event.points}`);
      announce(`Correct on a check: plus ${event.points}.`);
      break;
    case "gold_wrong":
      showGoldWrong(event);
      break;
    case "too_fast":
      announce("Too quick to count: take a moment to look at the image.", true);
      break;
    case "streak":
      floatText(`Streak ${event.streak}! +${event.points}`);
      announce(`Streak of ${event.streak}: plus ${event.points}.`);
      break;
    case "reshuffled":
      announce("No moves left: the gems were reshuffled.", true);
      break;
    case "board_reset":
      announce("No line possible: the board was cleared.", true);
      break;
    default:
      break;
  }
}

function floatText(text) {
  const el = document.createElement("div");
  el.className = "m3-float";
  el.setAttribute("aria-hidden", "true");
  el.textContent = text;
  boardEl.parentElement.append(el);
  setTimeout(() => el.remove(), 1100);
}

function showGoldWrong(event) {
  const right = view.classes[event.correct_class];
  root.querySelector("[data-role=gold-text]").textContent =
    `You said ${className(event.chosen_class)}; experts confirmed ${right.name}.` +
    (event.points_lost ? ` −${event.points_lost} points, ${event.lives_left} ${event.lives_left === 1 ? "life" : "lives"} left.` : " No penalty in the tutorial.");
  root.querySelector("[data-role=gold-class]").textContent = right.name;
  const img = root.querySelector("[data-role=gold-image]");
  img.src = thumbUrl(event.image_id);
  img.alt = `The image you judged: ${right.name}`;
  const refs = root.querySelector("[data-role=gold-refs]");
  refs.replaceChildren(
    ...event.reference_image_ids.map((id) => {
      const li = document.createElement("li");
      const ref = document.createElement("img");
      ref.src = thumbUrl(id);
      ref.alt = `Example of ${right.name}`;
      ref.width = 96;
      ref.height = 96;
      li.append(ref);
      return li;
    }),
  );
  announce(`That was a check. The right answer was ${right.name}.`);
  if (!goldDialog.open) goldDialog.showModal();
}

function showEnd() {
  const won = view.status === "won";
  const reasons = {
    out_of_moves: "You ran out of moves.",
    out_of_lives: "You ran out of lives.",
    out_of_images: "You have seen every image available right now.",
    quit: "You left the level.",
  };
  root.querySelector("[data-role=end-title]").textContent = won ? "Level complete!" : "Level over";
  root.querySelector("[data-role=end-text]").textContent = won
    ? `Score ${view.score}. Every label you gave helps; more points arrive when the crowd agrees.`
    : `${reasons[view.end_reason] || ""} Score ${view.score}.`;
  announce(won ? `Level complete with ${view.score} points.` : "Level over.");
  if (goldDialog.open) goldDialog.addEventListener("close", () => endDialog.showModal(), { once: true });
  else if (!endDialog.open) endDialog.showModal();
}

// ------------------------------------------------------------------------------ moves
function judge(tileId, classIndex) {
  if (!view || view.status !== "playing") return;
  if (classIndex >= view.classes.length) return;
  const pos = findTile(tileId);
  const tile = pos && tileAt(pos.r, pos.c);
  if (!tile || tile.gem !== null || pendingJudgements().has(tileId)) {
    announce("Pick an image that is not a gem yet.");
    return;
  }
  const clientMs = Math.round(performance.now() - (shownAt.get(tileId) ?? performance.now()));
  root.dataset.busy = "true";
  api.send({ type: "judge", tile: tileId, class_index: classIndex, client_ms: clientMs });
  announce(`Judged as ${className(classIndex)}.`);
  selected = null;
  renderBoard();
  advanceCursor(pos);
}

function advanceCursor(from) {
  const pending = pendingJudgements();
  const total = view.rows * view.cols;
  const start = from.r * view.cols + from.c;
  for (let step = 1; step <= total; step++) {
    const k = (start + step) % total;
    const t = tileAt(Math.floor(k / view.cols), k % view.cols);
    if (t && t.gem === null && !pending.has(t.tile_id)) {
      cursor = { r: Math.floor(k / view.cols), c: k % view.cols };
      break;
    }
  }
  focusCursor();
}

function judgeTarget() {
  // The selected image if one is selected, else the tile under the cursor.
  const pos = selected !== null ? findTile(selected) : null;
  const chosen = pos && tileAt(pos.r, pos.c);
  if (chosen && !isGem(chosen)) return chosen;
  return tileAt(cursor.r, cursor.c);
}

function isGem(tile) {
  return tile && (tile.gem !== null || pendingJudgements().has(tile.tile_id));
}

function swap(a, b) {
  if (!view || view.status !== "playing") return;
  root.dataset.busy = "true";
  api.send({ type: "swap", tile: a, other: b });
  selected = null;
  announce("Swapping.");
}

function activate(r, c) {
  const tile = tileAt(r, c);
  if (!tile) return;
  if (selected !== null && selected !== tile.tile_id && isGem(tile)) {
    const first = findTile(selected);
    const firstTile = first && tileAt(first.r, first.c);
    if (first && isGem(firstTile) && Math.abs(first.r - r) + Math.abs(first.c - c) === 1) {
      swap(selected, tile.tile_id);
      renderBoard();
      focusCursor();
      return;
    }
  }
  selected = selected === tile.tile_id ? null : tile.tile_id;
  const what = isGem(tile) ? "Gem selected: choose a neighbour to swap with." : "Image selected: choose its class.";
  announce(selected === null ? "Selection cleared." : what);
  renderBoard();
  focusCursor();
}

// ------------------------------------------------------------------------------ input
function dialogOpen() {
  return goldDialog.open || endDialog.open;
}

document.addEventListener("keydown", (event) => {
  if (!view || dialogOpen() || event.altKey || event.ctrlKey || event.metaKey) return;
  const inField = event.target.closest?.("input, textarea, select, [contenteditable]");
  const outside = !root.contains(event.target) && event.target !== document.body;
  if (inField || outside) return;
  const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
  if (moves[event.key]) {
    event.preventDefault();
    cursor.r += moves[event.key][0];
    cursor.c += moves[event.key][1];
    clampCursor();
    focusCursor();
    return;
  }
  if (/^[1-8]$/.test(event.key)) {
    event.preventDefault();
    const tile = judgeTarget();
    if (tile) judge(tile.tile_id, Number(event.key) - 1);
    return;
  }
  if ((event.key === "Enter" || event.key === " ") && event.target.closest(".m3-board")) {
    event.preventDefault();
    activate(cursor.r, cursor.c);
    return;
  }
  if (event.key === "Escape") {
    selected = null;
    viewerEl.classList.remove("is-open");
    renderBoard();
    focusCursor();
  }
});

let press = null;

boardEl.addEventListener("pointerdown", (event) => {
  const cell = event.target.closest(".m3-tile");
  if (!cell || !view) return;
  const r = Number(cell.dataset.r);
  const c = Number(cell.dataset.c);
  press = { r, c, x: event.clientX, y: event.clientY, held: false, type: event.pointerType };
  press.timer = setTimeout(() => {
    const tile = tileAt(r, c);
    if (!press || !tile) return;
    press.held = true;
    showLarge(tile);
    viewerEl.classList.add("is-open");
    announce("Close look open. Release or press Close to go back.");
  }, HOLD_MS);
});

function endPress(event) {
  if (!press) return;
  clearTimeout(press.timer);
  const p = press;
  press = null;
  if (p.held) return;
  const dx = event.clientX - p.x;
  const dy = event.clientY - p.y;
  cursor = { r: p.r, c: p.c };
  if (Math.max(Math.abs(dx), Math.abs(dy)) >= SWIPE_PX) {
    const [dr, dc] = Math.abs(dx) > Math.abs(dy) ? [0, Math.sign(dx)] : [Math.sign(dy), 0];
    const a = tileAt(p.r, p.c);
    const b = tileAt(p.r + dr, p.c + dc);
    if (isGem(a) && isGem(b)) swap(a.tile_id, b.tile_id);
    else announce("Only gems can be swapped: judge the image first.");
    renderBoard();
    return;
  }
  activate(p.r, p.c);
}

boardEl.addEventListener("pointerup", endPress);
boardEl.addEventListener("pointercancel", () => { if (press) clearTimeout(press.timer); press = null; });
boardEl.addEventListener("contextmenu", (event) => event.preventDefault());
boardEl.addEventListener("pointerover", (event) => {
  if (event.pointerType !== "mouse") return;
  const cell = event.target.closest(".m3-tile[data-tile]");
  const tile = cell && tileAt(Number(cell.dataset.r), Number(cell.dataset.c));
  if (tile) showLarge(tile);
});

root.querySelectorAll(".m3-class").forEach((button) => {
  button.addEventListener("click", () => {
    const tile = judgeTarget();
    if (tile) judge(tile.tile_id, Number(button.dataset.class));
  });
});

root.querySelector("[data-role=zoom]").addEventListener("click", () => {
  const pos = selected !== null ? findTile(selected) : cursor;
  const tile = pos && tileAt(pos.r, pos.c);
  if (tile) showLarge(tile);
  viewerEl.classList.add("is-open");
});
root.querySelector("[data-role=report-form]").addEventListener("submit", async (event) => {
  event.preventDefault();
  const imageId = viewer.current;
  if (!imageId) {
    announce("Look at an image closer first, then report it.", true);
    return;
  }
  const response = await fetch(root.dataset.reportUrl.replace(ZERO, imageId), {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify({ reason: event.target.elements.reason.value }),
  }).catch(() => null);
  if (response && response.ok) {
    announce("Thank you: a clinician will look at this image.", true);
    root.querySelector("[data-role=report]").open = false;
  } else {
    announce("The report could not be sent; please try again.", true);
  }
});
root.querySelector("[data-role=viewer-close]").addEventListener("click", () => {
  viewerEl.classList.remove("is-open");
  focusCursor();
});
root.querySelector("[data-role=gold-ok]").addEventListener("click", () => goldDialog.close());
root.querySelector("[data-role=end-again]").addEventListener("click", async () => {
  endDialog.close();
  await begin();
});

document.addEventListener("tessera:notification", (event) => {
  const data = event.detail || {};
  if (data.kind === "delayed_points" && view) {
    view.delayed_score += data.points;
    renderHud();
    announce(data.text);
  }
});

async function begin() {
  try {
    const data = await api.start();
    view = data.view;
    shownAt.clear();
    positions.clear();
    const first = view.board.flat().findIndex((t) => t && t.gem === null);
    cursor = first >= 0 ? { r: Math.floor(first / view.cols), c: first % view.cols } : { r: 0, c: 0 };
    render();
    root.dataset.ready = "true";
    announce(view.tutorial ? "Tutorial: judge each image by its class. Mistakes on checks cost nothing here." : "Level started.");
    if (view.status !== "playing") showEnd();
  } catch (error) {
    root.querySelector("[data-role=loading]").textContent = error.message;
    announce(error.message, true);
  }
}

begin();
