// Exports page: follow snapshots that are still building (poll their JSON; the notification
// socket also announces when one is ready) and reveal the download link when done.

const STATUS = { pending: "Queued", building: "Building", ready: "Ready", failed: "Failed" };

async function poll(row) {
  const response = await fetch(row.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (!response.ok) return false;
  const data = await response.json();
  row.dataset.status = data.status;
  row.querySelector(".export-status").textContent = STATUS[data.status] || data.status;
  row.querySelector("progress").value = data.progress;
  if (data.status === "ready" && data.download_url && !row.querySelector(".export-download a")) {
    const link = document.createElement("a");
    link.className = "button button-small";
    link.href = data.download_url;
    link.setAttribute("download", "");
    link.textContent = "Download";
    row.querySelector(".export-download").append(link);
    const counts = row.querySelector(".export-counts");
    const line = document.createElement("div");
    line.textContent = `${data.counts.images} images · sha256 ${data.sha256}`;
    counts.prepend(line);
  }
  if (data.status === "failed" && data.error) {
    const error = document.createElement("p");
    error.className = "error";
    error.textContent = data.error;
    row.querySelector(".export-status").after(error);
  }
  return data.status === "ready" || data.status === "failed";
}

function follow(row, delay = 800) {
  poll(row).then((done) => {
    if (!done) setTimeout(() => follow(row, Math.min(delay * 1.5, 5000)), delay);
  }).catch(() => setTimeout(() => follow(row, 5000), 5000));
}

for (const row of document.querySelectorAll("tr[data-export]")) {
  if (row.dataset.status === "pending" || row.dataset.status === "building") follow(row);
}
document.addEventListener("tessera:notification", (event) => {
  const id = event.detail?.export;
  const row = id && document.querySelector(`tr[data-export="${id}"]`);
  if (row) poll(row);
});

// The class list follows the chosen dataset: only its classes can be picked.
const form = document.querySelector("[data-testid=export-form]");
if (form) {
  const datasetSelect = form.elements.dataset;
  const showClasses = () => {
    for (const group of form.querySelectorAll("optgroup[data-dataset]")) {
      const mine = group.dataset.dataset === datasetSelect.value;
      group.hidden = !mine;
      group.disabled = !mine;
      if (!mine) for (const option of group.querySelectorAll("option")) option.selected = false;
    }
  };
  datasetSelect.addEventListener("change", showClasses);
  showClasses();
}
