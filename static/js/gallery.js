// The gallery page: upload by file picker or drag and drop, then show the new card, which
// says how far the server is in encoding the upload's stream (it starts in the background).

import { $, setText, show } from "./dom.js";
import { formatSize } from "./format.js";
import { uploadImage } from "./upload.js";

const form = $("#upload-form");
const input = $("#upload-file");
const dropzone = $("#dropzone");
const status = $("#upload-status");
const progress = $("#upload-progress");
const percent = $("#upload-percent");
const nameLabel = $("#upload-name");
const errorBox = $("#upload-error");
const gallery = $("#gallery");
const template = $("#card-template");

function setError(text) {
  setText(errorBox, text);
  show(errorBox, Boolean(text));
}

function setProgress(fraction) {
  progress.value = Math.round(fraction * 100);
  setText(percent, `${Math.round(fraction * 100)} %`);
}

/** Insert a card for `image` at the front (or highlight it if it is already there). */
function addCard(image) {
  let card = [...gallery.children].find((li) => li.dataset.imageId === image.id);
  if (!card) {
    card = template.content.firstElementChild.cloneNode(true);
    card.dataset.imageId = image.id;
    $("[data-field=link]", card).href = `/view/${encodeURIComponent(image.id)}`;
    const thumb = $("[data-field=thumb]", card);
    thumb.src = `/api/images/${encodeURIComponent(image.id)}/thumbnail.png`;
    setText($("[data-field=name]", card), image.name);
    setText($("[data-field=size]", card), `${formatSize(image.width, image.height)} px`);
    gallery.prepend(card);
    setText($("#image-count"), String(gallery.children.length));
    show($("#gallery-empty"), false);
  }
  card.classList.remove("is-new");
  void card.offsetWidth; // restart the highlight animation
  card.classList.add("is-new");
  card.scrollIntoView({ block: "nearest", behavior: "smooth" });
  return card;
}

/** How often a new card asks how far its encode is (ms). */
const ENCODING_POLL_MS = 1000;

/** Show on `card` how far the server is in encoding the image's stream, until it is done. */
async function followEncoding(card, id) {
  const field = $("[data-field=encoding]", card);
  for (;;) {
    let encoding;
    try {
      const response = await fetch(`/api/images/${encodeURIComponent(id)}`, { headers: { Accept: "application/json" } });
      if (!response.ok) break;
      encoding = (await response.json()).encoding;
    } catch {
      break; // the server went away: the card stays as it is
    }
    if (!encoding) break;
    const share = encoding.chunks ? ` ${encoding.chunks_done}/${encoding.chunks} chunks` : "";
    setText(field, `Encoding…${share}`);
    card.dataset.encoding = "running";
    show(field, true);
    await new Promise((resolve) => setTimeout(resolve, ENCODING_POLL_MS));
  }
  if (card.dataset.encoding === "running") {
    setText(field, "Encoded: ready to stream");
    card.dataset.encoding = "done";
  }
}

async function upload(file) {
  setError("");
  if (!file) return;
  setText(nameLabel, file.name);
  setProgress(0);
  show(status, true);
  form.classList.add("is-busy");
  try {
    const image = await uploadImage(file, { onProgress: setProgress });
    followEncoding(addCard(image), image.id);
    setText(percent, "Done");
  } catch (error) {
    show(status, false);
    setError(`Could not upload ${file.name}: ${error.message}`);
  } finally {
    form.classList.remove("is-busy");
    input.value = "";
  }
}

input.addEventListener("change", () => upload(input.files[0]));
form.addEventListener("submit", (event) => {
  event.preventDefault();
  upload(input.files[0]);
});

for (const type of ["dragenter", "dragover"]) {
  dropzone.addEventListener(type, (event) => {
    event.preventDefault();
    dropzone.classList.add("is-over");
  });
}
for (const type of ["dragleave", "dragend"]) {
  dropzone.addEventListener(type, (event) => {
    if (!dropzone.contains(event.relatedTarget)) dropzone.classList.remove("is-over");
  });
}
dropzone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropzone.classList.remove("is-over");
  const files = [...(event.dataTransfer?.files ?? [])];
  if (files.length > 1) setError("Drop one image at a time.");
  else upload(files[0]);
});
// A file dropped outside the drop zone must not navigate away from the page.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());
