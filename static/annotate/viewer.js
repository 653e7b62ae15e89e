// Image viewer: zoom and pan (pointer, wheel, keyboard, touch pinch) and window/level on the
// stored 8-bit derivative. The canvas and the SVG overlay share one transform, so outlines
// stay on the pixels they describe.

// Presets act on the stored display values (0–255): intake already windowed DICOM to 8 bits
// (CT with its stored window or soft tissue), so these re-window within that range.
// [name, level, width]
const PRESETS = {
  CT: [["As stored", 128, 256], ["Narrow (brain-like)", 128, 90], ["Dense (bone-like)", 200, 110], ["Low (air/lung-like)", 55, 110]],
  MR: [["As stored", 128, 256], ["Contrast +", 128, 150], ["Bright tissue", 175, 150], ["Dark tissue", 80, 150]],
  CR: [["As stored", 128, 256], ["Contrast +", 128, 160], ["Bone", 185, 140], ["Soft tissue / lung", 90, 160]],
  DEFAULT: [["As stored", 128, 256], ["Contrast +", 128, 160], ["Bright", 180, 160], ["Dark", 80, 160]],
};
PRESETS.DX = PRESETS.CR;
PRESETS.MG = PRESETS.CR;

export function presetsFor(modality) {
  return PRESETS[(modality || "").toUpperCase()] || PRESETS.DEFAULT;
}

// Lookup table of a linear VOI window on 8-bit values (PS3.3 C.11.2.1.2 with 8-bit output).
export function windowLut(level, width, invert = false) {
  const lut = new Uint8ClampedArray(256);
  const w = Math.max(1, width);
  for (let v = 0; v < 256; v++) {
    const out = ((v - (level - 0.5)) / (w - 1) + 0.5) * 255;
    lut[v] = invert ? 255 - Math.min(255, Math.max(0, out)) : out;
  }
  return lut;
}

export class Viewer {
  constructor(root) {
    this.root = root;
    this.stage = root.querySelector(".viewer-stage");
    this.canvas = root.querySelector("canvas");
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    this.width = Number(root.dataset.width);
    this.height = Number(root.dataset.height);
    this.presets = presetsFor(root.dataset.modality);
    this.presetIndex = 0;
    [, this.level, this.window] = this.presets[0];
    this.invert = false;
    this.scale = 1; this.x = 0; this.y = 0;
    this.listeners = [];
    this.image = new Image();
    this.image.addEventListener("load", () => { this.original = this.readPixels(); this.render(); this.fit(); });
    this.image.src = root.dataset.src;
    this.bindPointer();
    new ResizeObserver(() => this.fitIfUntouched()).observe(root);
  }

  onChange(fn) { this.listeners.push(fn); }
  emit() { for (const fn of this.listeners) fn(this); }

  readPixels() {
    this.ctx.drawImage(this.image, 0, 0, this.width, this.height);
    return this.ctx.getImageData(0, 0, this.width, this.height);
  }

  render() {
    if (!this.original) return;
    const lut = windowLut(this.level, this.window, this.invert);
    const src = this.original.data;
    const out = new ImageData(this.width, this.height);
    const dst = out.data;
    for (let i = 0; i < src.length; i += 4) {
      dst[i] = lut[src[i]]; dst[i + 1] = lut[src[i + 1]]; dst[i + 2] = lut[src[i + 2]]; dst[i + 3] = 255;
    }
    this.ctx.putImageData(out, 0, 0);
    this.emit();
  }

  setPreset(index) {
    this.presetIndex = (index + this.presets.length) % this.presets.length;
    [, this.level, this.window] = this.presets[this.presetIndex];
    this.render();
  }
  nextPreset() { this.setPreset(this.presetIndex + 1); }
  toggleInvert(value = !this.invert) { this.invert = value; this.render(); }
  adjustWindow(dLevel, dWidth) {
    this.level = Math.min(255, Math.max(0, this.level + dLevel));
    this.window = Math.min(512, Math.max(2, this.window + dWidth));
    this.render();
  }

  apply() {
    this.stage.style.transform = `translate(${this.x}px, ${this.y}px) scale(${this.scale})`;
    this.emit();
  }
  fit() {
    const box = this.root.getBoundingClientRect();
    this.scale = Math.min(box.width / this.width, box.height / this.height) || 1;
    this.x = (box.width - this.width * this.scale) / 2;
    this.y = (box.height - this.height * this.scale) / 2;
    this.touched = false;
    this.apply();
  }
  fitIfUntouched() { if (!this.touched) this.fit(); }
  zoomAt(factor, cx, cy) {
    const box = this.root.getBoundingClientRect();
    const px = cx ?? box.width / 2, py = cy ?? box.height / 2;
    const next = Math.min(40, Math.max(0.05, this.scale * factor));
    this.x = px - (px - this.x) * (next / this.scale);
    this.y = py - (py - this.y) * (next / this.scale);
    this.scale = next; this.touched = true;
    this.apply();
  }
  pan(dx, dy) { this.x += dx; this.y += dy; this.touched = true; this.apply(); }

  // Client coordinates -> image pixel coordinates.
  toImage(clientX, clientY) {
    const box = this.root.getBoundingClientRect();
    return [(clientX - box.left - this.x) / this.scale, (clientY - box.top - this.y) / this.scale];
  }

  bindPointer() {
    const pointers = new Map();
    let last = null, pinch = null;
    this.root.addEventListener("wheel", (event) => {
      event.preventDefault();
      const box = this.root.getBoundingClientRect();
      this.zoomAt(event.deltaY < 0 ? 1.15 : 1 / 1.15, event.clientX - box.left, event.clientY - box.top);
    }, { passive: false });
    this.root.addEventListener("pointerdown", (event) => {
      if (event.target.closest(".handle") || this.captureClicks) return;
      this.root.setPointerCapture(event.pointerId);
      pointers.set(event.pointerId, [event.clientX, event.clientY]);
      last = { x: event.clientX, y: event.clientY, shift: event.shiftKey };
    });
    this.root.addEventListener("pointermove", (event) => {
      if (!pointers.has(event.pointerId)) return;
      pointers.set(event.pointerId, [event.clientX, event.clientY]);
      if (pointers.size === 2) {
        const [a, b] = [...pointers.values()];
        const d = Math.hypot(a[0] - b[0], a[1] - b[1]);
        if (pinch) {
          const box = this.root.getBoundingClientRect();
          this.zoomAt(d / pinch, (a[0] + b[0]) / 2 - box.left, (a[1] + b[1]) / 2 - box.top);
        }
        pinch = d;
        return;
      }
      const dx = event.clientX - last.x, dy = event.clientY - last.y;
      if (last.shift) this.adjustWindow(-dy, dx); else this.pan(dx, dy);
      last = { x: event.clientX, y: event.clientY, shift: last.shift };
    });
    const end = (event) => { pointers.delete(event.pointerId); if (pointers.size < 2) pinch = null; };
    this.root.addEventListener("pointerup", end);
    this.root.addEventListener("pointercancel", end);
  }
}
