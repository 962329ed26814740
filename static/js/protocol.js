// The websocket client for /ws (docs/protocol.md): one StreamSession per stream.
//
// The server sends a JSON message, and for "level", "race" and "region" messages exactly
// one binary message (a PNG) right after it. FramePairer matches them up in order;
// StreamSession decodes the PNGs and calls the handlers strictly in arrival order.
// Message types it does not know are ignored, so the server can add new ones.

/** JSON message types that are followed by one binary frame. */
const PAIRED = new Set(["level", "race", "region"]);
/** The handler of each paired message type. */
const PAIRED_HANDLER = { level: "onLevel", race: "onRace", region: "onRegion" };

/** The websocket URL of this page's server. */
export function socketUrl(path = "/ws", loc = window.location) {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}${path}`;
}

/**
 * The start message for a stream request ({image, link, mode, race: [contender keys], ...} from the URL state).
 * `frame` is the size the viewer shows frames at ({width, height} in device pixels), or "full".
 */
export function startMessage(state) {
  const link = state.link === "custom"
    ? { down_kbps: Number(state.down_kbps), rtt_ms: Number(state.rtt_ms) }
    : state.link;
  return {
    type: "start",
    image: state.image,
    link,
    max_error: state.mode === "near" ? Number(state.max_error) : 0,
    generative_levels: state.mode === "generative" ? Number(state.generative_levels) : 0,
    preview: Boolean(state.preview),
    contenders: [...(state.race ?? [])],
    stream: state.stream ?? "layered",
    frame: state.frame ?? "full",
  };
}

/** Pairs each "level"/"race"/"region" JSON message with the binary frame that follows it. */
export class FramePairer {
  constructor() {
    this.waiting = [];
  }

  /**
   * Feed one websocket message (a string or binary data). Returns
   * {message} for unpaired messages, {message, data} once a pair is complete,
   * or null while a JSON message waits for its frame.
   */
  accept(raw) {
    if (typeof raw === "string") {
      let message;
      try {
        message = JSON.parse(raw);
      } catch {
        throw new Error("the server sent a message that is not JSON");
      }
      if (PAIRED.has(message.type)) {
        this.waiting.push(message);
        return null;
      }
      return { message };
    }
    const message = this.waiting.shift();
    if (!message) throw new Error("the server sent an image frame without its description");
    return { message, data: raw };
  }
}

/**
 * Decode a frame (a PNG, or a JPEG for a frame shrunk to the stage) to an ImageBitmap with its
 * pixel values as sent (no colour management); the browser tells the two apart by their bytes.
 */
export function decodeFrame(data) {
  const blob = data instanceof Blob ? data : new Blob([data]);
  return createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
}

/**
 * One stream over its own websocket.
 *
 * handlers: onOpen(), onProgress(msg), onMeta(msg), onLevel(msg, bitmap), onChunk(msg) (a chunk whose
 * frame a later chunk's stands in for), onRace(msg, bitmap), onRegion(msg, bitmap), onRegionBusy(msg)
 * (a region the server will not decode now: ask again after msg.retry_ms), onDone(msg),
 * onError(text, msg) (msg: the server's "error" message, null for a failure of the socket or a frame),
 * each optional. After close() no handler
 * runs again. The socket stays open after "done", so that the 1:1 view can still ask for
 * regions of the final picture (``region``); it closes with close() or a new stream.
 */
export class StreamSession {
  constructor(request, handlers, url = socketUrl()) {
    this.request = request;
    this.handlers = handlers;
    this.pairer = new FramePairer();
    this.queue = Promise.resolve(); // keeps handlers in arrival order across async decodes
    this.closed = false;
    this.finished = false;
    this.ws = new WebSocket(url);
    this.ws.binaryType = "blob";
    this.ws.addEventListener("open", () => {
      if (this.closed) {
        this.ws.close(1000, "client closed"); // closed while connecting: never started
        return;
      }
      this.ws.send(JSON.stringify(request));
      this.#emit("onOpen");
    });
    this.ws.addEventListener("message", (event) => this.#onMessage(event.data));
    this.ws.addEventListener("close", (event) => this.#onClose(event));
    // "error" is always followed by "close", which reports it.
  }

  /** Ask the server to stop this stream; nothing more is shown from it. */
  cancel() {
    if (this.closed) return;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: "cancel" }));
    this.close();
  }

  /** Ask for the exact pixels of a rectangle of the latest picture ({x, y, width, height}, image pixels). */
  region(rect) {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({ type: "region", ...rect }));
    return true;
  }

  /** Drop the socket without waiting for the stream to end (a socket still connecting closes once open). */
  close() {
    if (this.closed) return;
    this.closed = true;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000, "client closed");
  }

  #emit(name, ...args) {
    if (!this.closed) this.handlers[name]?.(...args);
  }

  #onMessage(raw) {
    if (this.closed) return;
    let pair;
    try {
      pair = this.pairer.accept(raw);
    } catch (error) {
      this.#fail(error.message);
      return;
    }
    if (!pair) return;
    const { message, data } = pair;
    if (data !== undefined) {
      const decoded = decodeFrame(data);
      decoded.catch(() => {}); // reported in order below
      this.queue = this.queue.then(async () => {
        let bitmap;
        try {
          bitmap = await decoded;
        } catch {
          this.#fail(`could not decode the image of ${message.type} ${message.level ?? ""}`.trim());
          return;
        }
        if (this.closed) return bitmap.close();
        this.#emit(PAIRED_HANDLER[message.type], message, bitmap);
      });
      return;
    }
    this.queue = this.queue.then(() => this.#dispatch(message));
  }

  #dispatch(message) {
    switch (message.type) {
      case "progress":
        this.#emit("onProgress", message);
        break;
      case "meta":
        this.#emit("onMeta", message);
        break;
      case "chunk":
        this.#emit("onChunk", message);
        break;
      case "region_busy":
        this.#emit("onRegionBusy", message);
        break;
      case "done":
        this.finished = true;
        this.#emit("onDone", message);
        break;
      case "error":
        this.#fail(message.message, message);
        break;
      default:
        break; // unknown messages are ignored, so the server can add new ones
    }
  }

  #fail(text, message = null) {
    this.#emit("onError", text, message);
    this.close();
  }

  #onClose(event) {
    if (this.closed || this.finished) return;
    this.queue = this.queue.then(() => {
      if (this.closed || this.finished) return;
      const why = event.reason ? `: ${event.reason}` : event.code === 1001 ? ": the server is shutting down" : "";
      this.#fail(`the connection closed before the stream finished${why}`);
    });
  }
}
