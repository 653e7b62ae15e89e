// The review page: viewer controls, the contour editor and keyboard shortcuts for fast review.
import { Viewer } from "./viewer.js";
import { ContourEditor } from "./contour-editor.js";

const root = document.getElementById("viewer");
const viewer = new Viewer(root);
const control = (name) => document.querySelector(`[data-viewer="${name}"]`);
const form = document.getElementById("decision-form");
const svg = root.querySelector("svg.overlay");

// Toolbar.
const presetSelect = control("preset");
viewer.presets.forEach(([name], index) => presetSelect.add(new Option(name, String(index))));
presetSelect.addEventListener("change", () => viewer.setPreset(Number(presetSelect.value)));
control("zoom-in").addEventListener("click", () => viewer.zoomAt(1.25));
control("zoom-out").addEventListener("click", () => viewer.zoomAt(0.8));
control("fit").addEventListener("click", () => viewer.fit());
control("invert").addEventListener("change", (e) => viewer.toggleInvert(e.target.checked));
const outlines = control("outlines");
outlines?.addEventListener("change", () => svg.classList.toggle("hidden-outlines", !outlines.checked));
const probability = control("probability");
const map = root.querySelector(".probability-map");
probability?.addEventListener("change", () => map.classList.toggle("hidden", !probability.checked));
const status = control("status");
viewer.onChange(() => {
  presetSelect.value = String(viewer.presetIndex);
  status.value = `${Math.round(viewer.scale * 100)} % · W ${Math.round(viewer.window)} L ${Math.round(viewer.level)}${viewer.invert ? " · inverted" : ""}`;
});

// Contour editing (outlining datasets): the edited polygon goes into the form.
let editor = null;
if (form && form.querySelector('input[name="action"][value="contour"]')) {
  editor = new ContourEditor(viewer, svg, (geometry) => {
    form.elements.geometry.value = geometry ? JSON.stringify(geometry) : "";
    choose("contour");
  });
}

function choose(action) {
  const radio = form?.querySelector(`input[name="action"][value="${action}"]`);
  if (radio) { radio.checked = true; radio.focus({ preventScroll: true }); }
  return Boolean(radio);
}

form?.addEventListener("change", (event) => {
  if (event.target.name === "label" && !form.querySelector('input[name="action"][value="escalate"]:checked')) {
    choose("relabel");
  }
});
form?.addEventListener("submit", (event) => {
  if (!form.querySelector('input[name="action"]:checked')) {
    event.preventDefault();
    status.value = "Choose a decision first.";
  }
});

const KEYS = {
  "+": () => viewer.zoomAt(1.25), "=": () => viewer.zoomAt(1.25), "-": () => viewer.zoomAt(0.8),
  "0": () => viewer.fit(),
  ArrowLeft: () => viewer.pan(40, 0), ArrowRight: () => viewer.pan(-40, 0),
  ArrowUp: () => viewer.pan(0, 40), ArrowDown: () => viewer.pan(0, -40),
  w: () => viewer.nextPreset(),
  i: () => { const box = control("invert"); box.checked = !box.checked; viewer.toggleInvert(box.checked); },
  o: () => { if (outlines) { outlines.checked = !outlines.checked; outlines.dispatchEvent(new Event("change")); } },
  p: () => { if (probability) { probability.checked = !probability.checked; probability.dispatchEvent(new Event("change")); } },
  c: () => choose("confirm"),
  r: () => choose("release"),
  u: () => choose("unusable"),
  e: () => choose("escalate"),
  x: () => { if (editor) { editor.toggle(); choose("contour"); } },
  n: () => form?.elements.note.focus(),
  Enter: () => form?.requestSubmit(),
};

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const typing = event.target.closest("textarea, input[type=text], select");
  if (typing) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  if (/^[1-9]$/.test(event.key) && form) {
    const label = form.querySelector(`input[name="label"][data-index="${event.key}"]`);
    if (label) {
      label.checked = true;
      if (!form.querySelector('input[name="action"][value="escalate"]:checked')) choose("relabel");
      event.preventDefault();
    }
    return;
  }
  const action = KEYS[event.key] || KEYS[event.key.toLowerCase()];
  if (!action) return;
  if (event.key === "Enter" && event.target.closest("button, a")) return; // native activation
  event.preventDefault();
  action();
});
root.focus({ preventScroll: true });
