// A fixed-size image stage: draws each level scaled to the full image with a short
// crossfade, in "fit" or "1:1" (one image pixel per device pixel, pannable) mode.
//
// A frame may be smaller than the image (the server sends frames at the size they are
// shown in fit mode); at 1:1 the viewer asks for the exact pixels of the visible
// rectangle (a *region*), which is drawn over the frame until a newer region replaces it.

import { prefersReducedMotion } from "./dom.js";

const FADE_MS = 220;
const PAN_STEP = 40;

export class Stage {
  /**
   * canvas: the <canvas> (its CSS box is fixed by the stylesheet, so levels never move the layout)
   * width, height: the full image size; every level is drawn over this rectangle.
   */
  constructor(canvas, { width, height }) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { alpha: false });
    this.imageWidth = width;
    this.imageHeight = height;
    this.mode = "fit";
    this.panX = 0; // image offset in device pixels at 1:1, relative to centred
    this.panY = 0;
    this.current = null;
    this.previous = null;
    this.region = null; // {bitmap, x, y} in image pixels: the exact pixels of a rectangle, drawn at 1:1
    this.onView = null; // called when what is visible at 1:1 changes (pan, resize, mode)
    this.fadeStart = 0;
    this.frames = 0;
    this.raf = 0;
    this.background = getComputedStyle(canvas).getPropertyValue("--stage-bg").trim() || "#0b0d12";
    this.#resize();
    new ResizeObserver(() => this.#resize()).observe(canvas);
    this.#bindPanning();
  }

  /** "fit" scales the image into the canvas; "1to1" shows one image pixel per device pixel. */
  setMode(mode) {
    this.mode = mode === "1to1" ? "1to1" : "fit";
    this.canvas.classList.toggle("is-pannable", this.mode === "1to1");
    this.draw();
    this.onView?.();
  }

  /** The rectangle of the image visible at 1:1, in image pixels ({x, y, width, height}), or null in fit mode. */
  visibleRect() {
    if (this.mode !== "1to1") return null;
    const place = this.placement();
    const x = Math.max(0, -place.x);
    const y = Math.max(0, -place.y);
    const width = Math.min(this.imageWidth, this.canvas.width - place.x) - x;
    const height = Math.min(this.imageHeight, this.canvas.height - place.y) - y;
    return width > 0 && height > 0 ? { x, y, width, height } : null;
  }

  /** Draw the exact pixels of a rectangle (image pixels from x, y) over the frame at 1:1. */
  showRegion(bitmap, x, y) {
    if (this.region && this.region.bitmap !== bitmap) this.region.bitmap.close?.();
    this.region = { bitmap, x, y };
    this.canvas.dataset.regions = String(Number(this.canvas.dataset.regions || 0) + 1);
    this.draw();
  }

  /** Show a new frame (an ImageBitmap of any size), crossfading from the previous one. */
  show(bitmap, label = "") {
    if (this.previous && this.previous !== bitmap) this.previous.close?.();
    this.previous = this.current;
    this.current = bitmap;
    this.frames += 1;
    this.canvas.dataset.frames = String(this.frames);
    this.canvas.dataset.frameWidth = String(bitmap.width);
    if (label) this.canvas.setAttribute("aria-label", label);
    this.fadeStart = performance.now();
    if (!this.previous || prefersReducedMotion()) this.fadeStart -= FADE_MS;
    this.#animate();
  }

  /** Stop drawing the region (a frame that is exact where it is shown makes it stale). */
  clearRegion() {
    this.region?.bitmap.close?.();
    this.region = null;
    this.draw();
  }

  /** Forget all frames and paint the empty stage. */
  clear(label = "") {
    this.previous?.close?.();
    this.current?.close?.();
    this.previous = this.current = null;
    this.region?.bitmap.close?.();
    this.region = null;
    this.frames = 0;
    this.canvas.dataset.frames = "0";
    this.canvas.dataset.regions = "0";
    if (label) this.canvas.setAttribute("aria-label", label);
    this.draw();
  }

  /** Move the view at 1:1 by (dx, dy) device pixels; Infinity-free, clamped to the image. */
  pan(dx, dy) {
    if (this.mode !== "1to1") return;
    this.panX += dx;
    this.panY += dy;
    this.draw();
    this.onView?.();
  }

  /** Where the image lies on the canvas, in canvas (device) pixels: {x, y, scale}. */
  placement() {
    const cw = this.canvas.width;
    const ch = this.canvas.height;
    const iw = this.imageWidth;
    const ih = this.imageHeight;
    if (this.mode === "fit") {
      const scale = Math.min(cw / iw, ch / ih);
      return { x: (cw - iw * scale) / 2, y: (ch - ih * scale) / 2, scale };
    }
    // 1:1: centre what fits, clamp panning so the image always covers the canvas.
    const clampAxis = (canvasSize, imageSize, pan) => {
      const centred = Math.floor((canvasSize - imageSize) / 2);
      if (imageSize <= canvasSize) return { offset: centred, pan: 0 };
      const clamped = Math.min(-centred, Math.max(canvasSize - imageSize - centred, pan));
      return { offset: centred + Math.round(clamped), pan: clamped };
    };
    const ax = clampAxis(cw, iw, this.panX);
    const ay = clampAxis(ch, ih, this.panY);
    this.panX = ax.pan;
    this.panY = ay.pan;
    return { x: ax.offset, y: ay.offset, scale: 1 };
  }

  /** Paint the current state (called on every animation frame while fading). */
  draw() {
    const { ctx, canvas } = this;
    const place = this.placement();
    canvas.dataset.x = String(place.x);
    canvas.dataset.y = String(place.y);
    canvas.dataset.scale = String(place.scale);
    ctx.globalAlpha = 1;
    ctx.fillStyle = this.background;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const t = Math.min(1, (performance.now() - this.fadeStart) / FADE_MS);
    if (this.previous && t < 1) this.#drawFrame(this.previous, place, 1);
    if (this.current) this.#drawFrame(this.current, place, this.previous && t < 1 ? easeOut(t) : 1);
    ctx.globalAlpha = 1;
    if (this.region && place.scale === 1) {
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(this.region.bitmap, place.x + this.region.x, place.y + this.region.y);
    }
    return t < 1;
  }

  #drawFrame(bitmap, place, alpha) {
    const { ctx } = this;
    const w = this.imageWidth * place.scale;
    const h = this.imageHeight * place.scale;
    // Pixel-exact when nothing is resampled; otherwise the browser's best filter.
    const exact = bitmap.width === w && bitmap.height === h && Number.isInteger(place.x) && Number.isInteger(place.y);
    ctx.imageSmoothingEnabled = !exact;
    ctx.imageSmoothingQuality = "high";
    ctx.globalAlpha = alpha;
    ctx.drawImage(bitmap, 0, 0, bitmap.width, bitmap.height, place.x, place.y, w, h);
  }

  #animate() {
    if (this.raf) return;
    const step = () => {
      this.raf = 0;
      if (this.draw()) this.raf = requestAnimationFrame(step);
      else this.canvas.dataset.settled = String(this.frames);
    };
    this.raf = requestAnimationFrame(step);
    this.canvas.dataset.settled = "";
  }

  #resize() {
    const dpr = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(this.canvas.clientWidth * dpr));
    const height = Math.max(1, Math.round(this.canvas.clientHeight * dpr));
    if (width !== this.canvas.width || height !== this.canvas.height) {
      this.canvas.width = width;
      this.canvas.height = height;
      this.onView?.();
    }
    this.draw();
  }

  #bindPanning() {
    const canvas = this.canvas;
    let drag = null;
    canvas.addEventListener("pointerdown", (event) => {
      if (this.mode !== "1to1" || event.button !== 0) return;
      drag = { x: event.clientX, y: event.clientY, id: event.pointerId };
      canvas.setPointerCapture(event.pointerId);
      canvas.classList.add("is-dragging");
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!drag || event.pointerId !== drag.id) return;
      const dpr = window.devicePixelRatio || 1;
      this.pan((event.clientX - drag.x) * dpr, (event.clientY - drag.y) * dpr);
      drag.x = event.clientX;
      drag.y = event.clientY;
    });
    const end = () => {
      drag = null;
      canvas.classList.remove("is-dragging");
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener("keydown", (event) => {
      if (this.mode !== "1to1" || event.altKey || event.ctrlKey || event.metaKey) return;
      const step = event.shiftKey ? PAN_STEP * 4 : PAN_STEP;
      const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
      if (event.key === "Home") {
        this.panX = this.panY = 0;
        this.draw();
        this.onView?.();
      } else if (moves[event.key]) {
        this.pan(...moves[event.key]);
      } else {
        return;
      }
      event.preventDefault();
    });
  }
}

function easeOut(t) {
  return 1 - (1 - t) * (1 - t);
}
