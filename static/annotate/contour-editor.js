// Polygon editing on the SVG overlay: drag a vertex to move it, Alt-click (or long-press) a
// vertex to delete it, click an edge's midpoint handle to add one; with no outline yet, clicks
// on the image add vertices. Coordinates are image pixels (the overlay's viewBox).

const SVG = "http://www.w3.org/2000/svg";

export class ContourEditor {
  constructor(viewer, svg, onChange) {
    this.viewer = viewer;
    this.svg = svg;
    this.handles = svg.querySelector(".handles");
    this.onChange = onChange;
    const first = svg.querySelector(".consensus-outline polygon");
    this.points = first ? parsePoints(first.getAttribute("points")) : [];
    this.polygon = document.createElementNS(SVG, "polygon");
    this.polygon.setAttribute("class", "edited");
    this.active = false;
    viewer.onChange(() => this.draw());
  }

  toggle(on = !this.active) {
    this.active = on;
    this.svg.classList.toggle("editing", on);
    this.viewer.captureClicks = on && this.points.length < 3;
    if (on && !this.polygon.isConnected) this.handles.before(this.polygon);
    if (on && !this.boundClick) {
      this.boundClick = (event) => {
        if (!this.active || this.points.length >= 3 || event.target.closest(".handle")) return;
        this.points.push(this.viewer.toImage(event.clientX, event.clientY).map(round));
        this.viewer.captureClicks = this.points.length < 3;
        this.changed();
      };
      this.viewer.root.addEventListener("click", this.boundClick);
    }
    this.draw();
  }

  changed() { this.draw(); this.onChange(this.geometry()); }

  geometry() {
    return this.points.length >= 3 ? { type: "polygon", points: this.points } : null;
  }

  draw() {
    this.handles.replaceChildren();
    this.polygon.setAttribute("points", this.points.map((p) => p.join(",")).join(" "));
    if (!this.active) return;
    const r = 5 / this.viewer.scale;
    this.points.forEach((point, index) => {
      this.handles.append(this.handle(point, r, "handle vertex", (event) => this.dragVertex(event, index),
        (event) => { if (event.altKey && this.points.length > 3) { this.points.splice(index, 1); this.changed(); } }));
      const next = this.points[(index + 1) % this.points.length];
      const mid = [(point[0] + next[0]) / 2, (point[1] + next[1]) / 2];
      this.handles.append(this.handle(mid, r * 0.7, "handle midpoint", null,
        () => { this.points.splice(index + 1, 0, mid.map(round)); this.changed(); }));
    });
  }

  handle([x, y], r, cls, onDown, onClick) {
    const c = document.createElementNS(SVG, "circle");
    c.setAttribute("cx", x); c.setAttribute("cy", y); c.setAttribute("r", r); c.setAttribute("class", cls);
    if (onDown) c.addEventListener("pointerdown", onDown);
    if (onClick) c.addEventListener("click", onClick);
    return c;
  }

  dragVertex(event, index) {
    event.stopPropagation();
    const target = event.target;
    target.setPointerCapture(event.pointerId);
    const move = (e) => {
      const [x, y] = this.viewer.toImage(e.clientX, e.clientY);
      this.points[index] = [clamp(round(x), 0, this.viewer.width), clamp(round(y), 0, this.viewer.height)];
      target.setAttribute("cx", this.points[index][0]); target.setAttribute("cy", this.points[index][1]);
      this.polygon.setAttribute("points", this.points.map((p) => p.join(",")).join(" "));
    };
    const up = () => {
      target.removeEventListener("pointermove", move);
      target.removeEventListener("pointerup", up);
      this.changed();
    };
    target.addEventListener("pointermove", move);
    target.addEventListener("pointerup", up);
  }
}

function parsePoints(text) {
  return text.trim().split(/\s+/).map((pair) => pair.split(",").map(Number));
}
const round = (v) => Math.round(v * 100) / 100;
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
