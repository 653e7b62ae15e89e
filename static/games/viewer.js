// The close-look panel: the full image on a canvas, with window/level presets applied to the
// 8-bit derivative of DICOM-based images (a lookup table on the pixels, all client-side).

const PRESETS = {
  full: { centre: 128, width: 256 },
  soft: { centre: 128, width: 150 },
  lung: { centre: 70, width: 120 },
  bone: { centre: 190, width: 110 },
};

export class Viewer {
  constructor(root, { imageUrl }) {
    this.root = root;
    this.canvas = root.querySelector("[data-role=viewer-canvas]");
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    this.imageUrl = imageUrl;
    this.preset = "full";
    this.invert = false;
    this.current = null;
    this.pixels = null;
    this.cache = new Map();
    root.querySelectorAll("[data-preset]").forEach((button) => {
      button.addEventListener("click", () => this.choose(button.dataset.preset));
    });
  }

  choose(name) {
    if (name === "invert") this.invert = !this.invert;
    else this.preset = name;
    this.root.querySelectorAll("[data-preset]").forEach((b) => {
      const on = b.dataset.preset === "invert" ? this.invert : b.dataset.preset === this.preset;
      b.classList.toggle("is-on", on);
      b.setAttribute("aria-pressed", String(on));
    });
    this.draw();
  }

  load(imageId) {
    if (!this.cache.has(imageId)) {
      const img = new Image();
      img.decoding = "async";
      img.src = this.imageUrl(imageId);
      this.cache.set(imageId, img.decode().then(() => img).catch(() => null));
      if (this.cache.size > 40) this.cache.delete(this.cache.keys().next().value);
    }
    return this.cache.get(imageId);
  }

  async show(imageId, label) {
    this.current = imageId;
    this.canvas.setAttribute("aria-label", label || "The selected image, large");
    const img = await this.load(imageId);
    if (this.current !== imageId || !img) return;
    const side = this.canvas.width;
    const scale = Math.min(side / img.naturalWidth, side / img.naturalHeight);
    const w = Math.round(img.naturalWidth * scale);
    const h = Math.round(img.naturalHeight * scale);
    this.ctx.fillStyle = "#000";
    this.ctx.fillRect(0, 0, side, side);
    this.ctx.drawImage(img, (side - w) / 2, (side - h) / 2, w, h);
    this.pixels = this.ctx.getImageData(0, 0, side, side);
    this.draw();
  }

  draw() {
    if (!this.pixels) return;
    const { centre, width } = PRESETS[this.preset];
    const low = centre - width / 2;
    const lut = new Uint8ClampedArray(256);
    for (let v = 0; v < 256; v++) {
      const out = ((v - low) / width) * 255;
      lut[v] = this.invert ? 255 - out : out;
    }
    const out = new ImageData(new Uint8ClampedArray(this.pixels.data), this.pixels.width, this.pixels.height);
    const d = out.data;
    for (let i = 0; i < d.length; i += 4) {
      d[i] = lut[d[i]];
      d[i + 1] = lut[d[i + 1]];
      d[i + 2] = lut[d[i + 2]];
    }
    this.ctx.putImageData(out, 0, 0);
  }
}
