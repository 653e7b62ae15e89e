// Review of quarantined intake: shows the detected text boxes over the image, lets the
// coordinator tick which to black out and drag new boxes (mouse, pen or touch via pointer
// events). Every box is also a checkbox in a list, so the choice never depends on the canvas.

const stage = document.getElementById("review-stage");
const svg = document.getElementById("review-boxes");
const list = document.getElementById("box-list");
const hidden = document.getElementById("id_boxes");
const form = document.getElementById("review-form");
const NS = "http://www.w3.org/2000/svg";
const width = Number(stage.dataset.width);
const height = Number(stage.dataset.height);
const detected = JSON.parse(document.getElementById("detected-boxes").textContent);
const boxes = detected.map((b) => ({ ...b, source: "detected", selected: true }));

function toImage(event) {
  const rect = svg.getBoundingClientRect();
  const x = ((event.clientX - rect.left) / rect.width) * width;
  const y = ((event.clientY - rect.top) / rect.height) * height;
  return [Math.max(0, Math.min(width, x)), Math.max(0, Math.min(height, y))];
}

function draw() {
  svg.replaceChildren();
  list.replaceChildren();
  boxes.forEach((box, index) => {
    const rect = document.createElementNS(NS, "rect");
    for (const key of ["width", "height"]) rect.setAttribute(key, box[key]);
    rect.setAttribute("x", box.left);
    rect.setAttribute("y", box.top);
    rect.setAttribute("class", `box box-${box.source}${box.selected ? " box-selected" : ""}`);
    svg.append(rect);
    const li = document.createElement("li");
    const label = document.createElement("label");
    const check = document.createElement("input");
    check.type = "checkbox";
    check.checked = box.selected;
    check.addEventListener("change", () => { box.selected = check.checked; draw(); });
    const kind = box.source === "detected" ? `detected text (${box.confidence}%)` : "drawn by you";
    label.append(check, ` Region ${index + 1}: ${kind}, ${box.width}×${box.height} px at ${box.left},${box.top}`);
    li.append(label);
    list.append(li);
  });
  hidden.value = JSON.stringify(boxes.filter((b) => b.selected).map(({ left, top, width: w, height: h }) => ({ left, top, width: w, height: h })));
}

let start = null;
let ghost = null;
svg.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  svg.setPointerCapture(event.pointerId);
  start = toImage(event);
  ghost = document.createElementNS(NS, "rect");
  ghost.setAttribute("class", "box box-drawing");
  svg.append(ghost);
});
svg.addEventListener("pointermove", (event) => {
  if (!start) return;
  const [x, y] = toImage(event);
  ghost.setAttribute("x", Math.min(x, start[0]));
  ghost.setAttribute("y", Math.min(y, start[1]));
  ghost.setAttribute("width", Math.abs(x - start[0]));
  ghost.setAttribute("height", Math.abs(y - start[1]));
});
svg.addEventListener("pointerup", (event) => {
  if (!start) return;
  const [x, y] = toImage(event);
  const box = {
    left: Math.floor(Math.min(x, start[0])),
    top: Math.floor(Math.min(y, start[1])),
    width: Math.ceil(Math.abs(x - start[0])),
    height: Math.ceil(Math.abs(y - start[1])),
    source: "drawn",
    selected: true,
  };
  start = null;
  if (box.width >= 2 && box.height >= 2) boxes.push(box);
  draw();
});
form.addEventListener("submit", draw);
draw();
