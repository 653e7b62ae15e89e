// Outline editor on a canvas: freehand strokes, click-to-place points, dragging vertices, undo,
// zoom and pan, mouse, touch (pinch) and keyboard. Points are kept in image pixel coordinates
// (x: column, y: row, origin at the image's top-left corner): what the server validates and
// stores, whatever the zoom.

const CLOSE_PX = 12; // image pixels: a freehand stroke ending this close to its start is closed
const HIT_PX = 10; // screen pixels: how close a pointer must be to grab a vertex
const MIN_SCALE = 0.25;
const MAX_SCALE = 16;

export class OutlineEditor {
  constructor(canvas, { onChange = () => {}, onFirstStroke = () => {} } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.onChange = onChange;
    this.onFirstStroke = onFirstStroke;
    this.image = null;
    this.width = 0;
    this.height = 0;
    this.mode = "freehand";
    this.points = [];
    this.closed = false;
    this.history = [];
    this.locked = true;
    this.cursor = null;
    this.selected = null;
    this.reference = null; // rings drawn dashed (results)
    this.view = { scale: 1, ox: 0, oy: 0 };
    this.pointers = new Map();
    this.gesture = null;
    this.started = false;
    this._bind();
    new ResizeObserver(() => this._resize()).observe(canvas);
  }

  // -- state -----------------------------------------------------------------------------------
  setImage(image, width, height) {
    this.image = image;
    this.width = width;
    this.height = height;
    this.cursor = [width / 2, height / 2];
    this.fit();
  }

  reset(points = [], closed = false) {
    this.points = points.map(([x, y]) => [x, y]);
    this.closed = closed;
    this.history = [];
    this.selected = null;
    this.started = points.length > 0;
    this.reference = null;
    this._changed();
  }

  setLocked(locked) {
    this.locked = locked;
    this.canvas.dataset.locked = String(locked);
    this.draw();
  }

  setMode(mode) {
    this.mode = mode;
    this.canvas.dataset.mode = mode;
  }

  isClosed() {
    return this.closed && this.points.length >= 3;
  }

  _snapshot() {
    this.history.push({ points: this.points.map((p) => [...p]), closed: this.closed });
    if (this.history.length > 200) this.history.shift();
  }

  undo() {
    if (this.locked) return;
    const last = this.history.pop();
    if (!last) return;
    this.points = last.points;
    this.closed = last.closed;
    this.selected = null;
    this._changed();
  }

  clear() {
    if (this.locked || !this.points.length) return;
    this._snapshot();
    this.points = [];
    this.closed = false;
    this.selected = null;
    this._changed();
  }

  close() {
    if (this.locked || this.closed || this.points.length < 3) return;
    this._snapshot();
    this.closed = true;
    this._changed();
  }

  addPoint(p) {
    if (this.locked) return;
    if (this.closed) return;
    const first = this.points[0];
    if (this.points.length >= 3 && first && this._screenDist(p, first) <= HIT_PX) {
      this.close();
      return;
    }
    this._snapshot();
    this.points.push(this._clamp(p));
    this._started();
    this._changed();
  }

  _started() {
    if (!this.started) {
      this.started = true;
      this.onFirstStroke();
    }
  }

  _changed() {
    this.draw();
    this.onChange(this);
  }

  // -- geometry --------------------------------------------------------------------------------
  _clamp([x, y]) {
    return [Math.min(Math.max(x, 0), this.width), Math.min(Math.max(y, 0), this.height)];
  }

  toImage(sx, sy) {
    const { scale, ox, oy } = this.view;
    return [(sx - ox) / scale, (sy - oy) / scale];
  }

  toScreen([x, y]) {
    const { scale, ox, oy } = this.view;
    return [x * scale + ox, y * scale + oy];
  }

  _screenDist(a, b) {
    return Math.hypot(a[0] - b[0], a[1] - b[1]) * this.view.scale;
  }

  _eventPoint(event) {
    const rect = this.canvas.getBoundingClientRect();
    const sx = ((event.clientX - rect.left) * this.canvas.width) / rect.width;
    const sy = ((event.clientY - rect.top) * this.canvas.height) / rect.height;
    return { sx, sy, p: this.toImage(sx, sy) };
  }

  _nearestVertex(p) {
    let best = null;
    let bestDist = HIT_PX;
    this.points.forEach((q, i) => {
      const d = this._screenDist(p, q);
      if (d <= bestDist) {
        best = i;
        bestDist = d;
      }
    });
    return best;
  }

  // -- view ------------------------------------------------------------------------------------
  _resize() {
    const rect = this.canvas.getBoundingClientRect();
    if (!rect.width) return;
    const aspect = this.height && this.width ? this.height / this.width : 0.75;
    this.canvas.width = Math.round(rect.width);
    this.canvas.height = Math.round(Math.min(rect.width * aspect, window.innerHeight * 0.7));
    this.fit();
  }

  fit() {
    if (!this.width) return this.draw();
    const scale = Math.min(this.canvas.width / this.width, this.canvas.height / this.height);
    this.view = {
      scale,
      ox: (this.canvas.width - this.width * scale) / 2,
      oy: (this.canvas.height - this.height * scale) / 2,
    };
    this.draw();
  }

  zoomAt(factor, sx = this.canvas.width / 2, sy = this.canvas.height / 2) {
    const { scale, ox, oy } = this.view;
    const next = Math.min(MAX_SCALE, Math.max(MIN_SCALE, scale * factor));
    const k = next / scale;
    this.view = { scale: next, ox: sx - (sx - ox) * k, oy: sy - (sy - oy) * k };
    this.draw();
  }

  pan(dx, dy) {
    this.view = { ...this.view, ox: this.view.ox + dx, oy: this.view.oy + dy };
    this.draw();
  }

  _keepVisible(p) {
    const [sx, sy] = this.toScreen(p);
    const margin = 20;
    let dx = 0;
    let dy = 0;
    if (sx < margin) dx = margin - sx;
    if (sx > this.canvas.width - margin) dx = this.canvas.width - margin - sx;
    if (sy < margin) dy = margin - sy;
    if (sy > this.canvas.height - margin) dy = this.canvas.height - margin - sy;
    if (dx || dy) this.pan(dx, dy);
  }

  // -- input -----------------------------------------------------------------------------------
  _bind() {
    const c = this.canvas;
    c.addEventListener("pointerdown", (e) => this._down(e));
    c.addEventListener("pointermove", (e) => this._move(e));
    c.addEventListener("pointerup", (e) => this._up(e));
    c.addEventListener("pointercancel", (e) => this._up(e));
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      const { sx, sy } = this._eventPoint(e);
      this.zoomAt(e.deltaY < 0 ? 1.2 : 1 / 1.2, sx, sy);
    }, { passive: false });
    c.addEventListener("keydown", (e) => this._key(e));
    c.addEventListener("focus", () => this.draw());
    c.addEventListener("blur", () => this.draw());
  }

  _down(e) {
    this.canvas.setPointerCapture?.(e.pointerId);
    const at = this._eventPoint(e);
    this.pointers.set(e.pointerId, at);
    if (this.pointers.size === 2) {
      // two fingers: pinch to zoom, move to pan (cancels a stroke just begun)
      const [a, b] = [...this.pointers.values()];
      if (this.gesture?.kind === "stroke") this.undo();
      this.gesture = { kind: "pinch", dist: Math.hypot(a.sx - b.sx, a.sy - b.sy), mid: [(a.sx + b.sx) / 2, (a.sy + b.sy) / 2] };
      return;
    }
    if (this.mode === "pan" || e.button === 1 || this.locked) {
      this.gesture = { kind: "pan", last: [at.sx, at.sy] };
      return;
    }
    const vertex = this._nearestVertex(at.p);
    if (vertex !== null && (this.closed || this.mode === "points") && !(this.mode === "points" && vertex === 0 && !this.closed && this.points.length >= 3)) {
      this._snapshot();
      this.gesture = { kind: "drag", index: vertex };
      this.selected = vertex;
      return;
    }
    if (this.mode === "freehand") {
      this._snapshot();
      this.points = [this._clamp(at.p)];
      this.closed = false;
      this.selected = null;
      this.gesture = { kind: "stroke" };
      this._started();
      this._changed();
    } else {
      this.gesture = { kind: "click" };
      this.addPoint(at.p);
    }
    e.preventDefault();
  }

  _move(e) {
    if (!this.pointers.has(e.pointerId)) {
      return;
    }
    const at = this._eventPoint(e);
    this.pointers.set(e.pointerId, at);
    const g = this.gesture;
    if (!g) return;
    if (g.kind === "pinch" && this.pointers.size === 2) {
      const [a, b] = [...this.pointers.values()];
      const dist = Math.hypot(a.sx - b.sx, a.sy - b.sy);
      const mid = [(a.sx + b.sx) / 2, (a.sy + b.sy) / 2];
      this.pan(mid[0] - g.mid[0], mid[1] - g.mid[1]);
      if (g.dist > 0) this.zoomAt(dist / g.dist, mid[0], mid[1]);
      g.dist = dist;
      g.mid = mid;
    } else if (g.kind === "pan") {
      this.pan(at.sx - g.last[0], at.sy - g.last[1]);
      g.last = [at.sx, at.sy];
    } else if (g.kind === "drag") {
      this.points[g.index] = this._clamp(at.p);
      this._changed();
    } else if (g.kind === "stroke") {
      const last = this.points[this.points.length - 1];
      if (this._screenDist(at.p, last) >= 3) {
        this.points.push(this._clamp(at.p));
        this.draw();
      }
    }
  }

  _up(e) {
    this.pointers.delete(e.pointerId);
    const g = this.gesture;
    if (this.pointers.size > 0) return;
    this.gesture = null;
    if (g?.kind === "stroke") {
      const first = this.points[0];
      const last = this.points[this.points.length - 1];
      if (this.points.length >= 3 && Math.hypot(first[0] - last[0], first[1] - last[1]) <= CLOSE_PX) {
        this.closed = true;
      }
      this._changed();
    }
  }

  _key(e) {
    if (!this.width) return;
    const step = e.shiftKey ? 10 : 1;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (moves[e.key]) {
      e.preventDefault();
      const [dx, dy] = moves[e.key];
      if (this.selected !== null && !this.locked) {
        if (!this._movingSelected) this._snapshot();
        this._movingSelected = true;
        const [x, y] = this.points[this.selected];
        this.points[this.selected] = this._clamp([x + dx, y + dy]);
        this._keepVisible(this.points[this.selected]);
        this._changed();
      } else {
        this.cursor = this._clamp([this.cursor[0] + dx, this.cursor[1] + dy]);
        this._keepVisible(this.cursor);
        this.draw();
        this.onChange(this);
      }
      return;
    }
    this._movingSelected = false;
    const key = e.key.toLowerCase();
    if (key === "enter" || key === " ") {
      e.preventDefault();
      this.addPoint(this.cursor);
    } else if (key === "c") {
      this.close();
    } else if (key === "backspace" || key === "u" || ((e.ctrlKey || e.metaKey) && key === "z")) {
      e.preventDefault();
      this.undo();
    } else if (key === "[" || key === "]") {
      if (!this.points.length) return;
      const n = this.points.length;
      const cur = this.selected ?? (key === "]" ? -1 : 0);
      this.selected = (cur + (key === "]" ? 1 : -1) + n) % n;
      this.cursor = [...this.points[this.selected]];
      this._keepVisible(this.cursor);
      this._changed();
    } else if (key === "escape") {
      this.selected = null;
      this._changed();
    } else if (key === "+" || key === "=") {
      this.zoomAt(1.25, ...this.toScreen(this.cursor));
    } else if (key === "-") {
      this.zoomAt(1 / 1.25, ...this.toScreen(this.cursor));
    } else if (key === "0") {
      this.fit();
    }
  }

  // -- drawing ---------------------------------------------------------------------------------
  _path(points, closed) {
    const ctx = this.ctx;
    ctx.beginPath();
    points.forEach((p, i) => {
      const [x, y] = this.toScreen(p);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    if (closed) ctx.closePath();
  }

  draw() {
    const { ctx, canvas } = this;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#1d2330";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!this.width) return;
    const { scale, ox, oy } = this.view;
    ctx.imageSmoothingEnabled = scale < 2;
    if (this.image) ctx.drawImage(this.image, ox, oy, this.width * scale, this.height * scale);
    if (this.reference) {
      ctx.save();
      ctx.setLineDash([8, 5]);
      ctx.lineWidth = 3;
      ctx.strokeStyle = "#e69f00"; // orange, dashed: the reference
      for (const ring of this.reference) {
        this._path(ring, true);
        ctx.stroke();
      }
      ctx.restore();
    }
    if (this.points.length) {
      ctx.save();
      this._path(this.points, this.closed);
      if (this.closed) {
        ctx.fillStyle = "rgba(86, 180, 233, 0.25)";
        ctx.fill();
      }
      ctx.lineWidth = 2.5;
      ctx.strokeStyle = "#56b4e9"; // sky blue, solid: yours
      ctx.stroke();
      if (!this.closed && this.points.length > 1) {
        ctx.setLineDash([3, 4]);
        ctx.lineWidth = 1;
        this._path([this.points[this.points.length - 1], this.points[0]], false);
        ctx.stroke();
      }
      ctx.restore();
      if (this.mode === "points" || this.closed || this.selected !== null) {
        this.points.forEach((p, i) => {
          const [x, y] = this.toScreen(p);
          ctx.fillStyle = i === this.selected ? "#f5b700" : "#ffffff";
          ctx.strokeStyle = "#1d2330";
          ctx.lineWidth = 1;
          const r = i === this.selected ? 5 : 3;
          ctx.fillRect(x - r, y - r, 2 * r, 2 * r);
          ctx.strokeRect(x - r, y - r, 2 * r, 2 * r);
        });
      }
    }
    if (document.activeElement === canvas && this.cursor && !this.locked) {
      const [x, y] = this.toScreen(this.cursor);
      ctx.strokeStyle = "#f5b700";
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.moveTo(x - 10, y);
      ctx.lineTo(x + 10, y);
      ctx.moveTo(x, y - 10);
      ctx.lineTo(x, y + 10);
      ctx.stroke();
    }
  }
}

export function drawReference(canvas, image, width, height, rings) {
  const ctx = canvas.getContext("2d");
  const scale = Math.min(canvas.width / width, canvas.height / height);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(image, 0, 0, width * scale, height * scale);
  ctx.setLineDash([6, 4]);
  ctx.lineWidth = 2;
  ctx.strokeStyle = "#e69f00";
  for (const ring of rings || []) {
    ctx.beginPath();
    ring.forEach(([x, y], i) => (i ? ctx.lineTo(x * scale, y * scale) : ctx.moveTo(x * scale, y * scale)));
    ctx.closePath();
    ctx.stroke();
  }
}
