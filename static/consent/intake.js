// Upload progress: polls the batch's JSON endpoint (and refreshes at once when the
// notification socket says this batch moved) until every file has a result. No page reload.

const root = document.getElementById("intake");
const summary = document.getElementById("intake-summary");
const bar = document.getElementById("intake-bar");
const tbody = document.getElementById("intake-items");
const url = root?.dataset.progressUrl;
let timer = null;
let delay = 800;

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function render(progress) {
  summary.textContent = `${progress.done} of ${progress.total} file${progress.total === 1 ? "" : "s"} processed` +
    (progress.finished ? ": done." : "…");
  bar.max = Math.max(progress.total, 1);
  bar.value = progress.done;
  bar.textContent = `${progress.done}/${progress.total}`;
  const rows = progress.items.map((item) => {
    const tr = document.createElement("tr");
    tr.dataset.status = item.status;
    tr.append(cell(`${item.archive ? "↳ " : ""}${item.name}`));
    const status = document.createElement("td");
    const pill = document.createElement("span");
    pill.className = `status status-${item.status}`;
    pill.textContent = item.status_label;
    status.append(pill);
    tr.append(status, cell(item.reason));
    return tr;
  });
  tbody.replaceChildren(...rows);
}

async function poll() {
  clearTimeout(timer);
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(String(response.status));
    const progress = await response.json();
    render(progress);
    if (progress.finished) return;
    delay = Math.min(delay * 1.3, 4000);
  } catch {
    delay = Math.min(delay * 2, 15000);
  }
  timer = setTimeout(poll, delay);
}

if (root && url) {
  document.addEventListener("tessera:notification", (event) => {
    if (event.detail?.kind === "intake" && url.includes(event.detail.batch)) {
      delay = 800;
      poll();
    }
  });
  poll();
}
