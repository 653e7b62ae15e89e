// Intake QC grid: arrow keys move between flagged images, A / K / U settle the current one
// without a page load (fetch, JSON), P toggles the fix preview. Forms still work without JS.

const grid = document.querySelector("[data-qc-grid]");
const status = document.querySelector("[data-qc-status]");
const pendingBadge = document.querySelector("[data-qc-pending]");
const DONE_TEXT = { fixed: "fix applied", kept: "kept as it is", unusable: "marked unusable" };

function cards() {
  return [...document.querySelectorAll("[data-qc-card]:not(.is-done)")];
}

function columns() {
  const list = cards();
  if (list.length < 2) return 1;
  const top = list[0].offsetTop;
  const n = list.findIndex((card) => card.offsetTop !== top);
  return n === -1 ? list.length : n;
}

function focusCard(card) {
  if (!card) return;
  document.querySelectorAll(".qc-card.is-current").forEach((c) => c.classList.remove("is-current"));
  card.classList.add("is-current");
  card.focus({ preventScroll: false });
  card.scrollIntoView({ block: "nearest" });
}

function current() {
  return document.activeElement?.closest?.("[data-qc-card]:not(.is-done)") || document.querySelector(".qc-card.is-current:not(.is-done)");
}

async function decide(card, action) {
  const form = card.querySelector("[data-qc-form]");
  const button = form.querySelector(`button[value="${action}"]`);
  if (!button) return;
  const body = new FormData(form);
  body.set("action", action);
  const list = cards();
  const next = list[list.indexOf(card) + 1] || list[list.indexOf(card) - 1];
  form.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  try {
    // form.action would be the buttons named "action": read the attribute.
    const response = await fetch(form.getAttribute("action"), {
      method: "POST",
      body,
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || `HTTP ${response.status}`);
    card.classList.add("is-done");
    if (data.state === "fixed") {
      // Show the rewritten thumbnail (a new URL: the old one may sit in the browser's cache).
      const img = card.querySelector("[data-qc-stored]");
      const url = new URL(img.src);
      url.searchParams.set("v", String(Date.now()));
      img.src = url.toString();
      card.querySelector(".qc-preview")?.remove();
      card.querySelector("[data-qc-stored] + figcaption").textContent = "fixed";
    }
    card.dataset.state = data.state;
    card.setAttribute("aria-label", `${card.getAttribute("aria-label")}: ${DONE_TEXT[data.state]}`);
    status.textContent = `Image ${DONE_TEXT[data.state] || data.state}.`;
    if (pendingBadge) pendingBadge.textContent = String(Math.max(0, Number(pendingBadge.textContent) - 1));
    focusCard(next);
  } catch (error) {
    status.textContent = `Not saved: ${error.message}`;
    form.querySelectorAll("button").forEach((b) => { b.disabled = false; });
  }
}

if (grid) {
  grid.addEventListener("submit", (event) => {
    const card = event.target.closest("[data-qc-card]");
    const action = event.submitter?.value;
    if (!card || !action) return;
    event.preventDefault();
    decide(card, action);
  });
  grid.addEventListener("click", (event) => {
    const card = event.target.closest("[data-qc-card]");
    if (card && !event.target.closest("button, a")) focusCard(card);
  });
  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.target.matches?.("input, textarea, select")) return;
    const list = cards();
    if (!list.length) return;
    const card = current();
    const index = card ? list.indexOf(card) : -1;
    const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns() }[event.key];
    if (step !== undefined) {
      event.preventDefault();
      focusCard(list[Math.min(list.length - 1, Math.max(0, index === -1 ? 0 : index + step))]);
      return;
    }
    const key = event.key.toLowerCase();
    if (key === "p") {
      grid.classList.toggle("hide-preview");
      return;
    }
    if (!card) return;
    const action = { a: "accept_fix", k: "keep", u: "unusable" }[key];
    if (action) {
      event.preventDefault();
      decide(card, action);
    } else if (event.key === "Enter" && event.target === card) {
      card.querySelector("[data-qc-open]")?.click();
    }
  });
  focusCard(cards()[0]);
}
