// Upload an image with XMLHttpRequest, which (unlike fetch) reports upload progress.

/**
 * POST `file` to /api/images as the multipart field "file".
 * Resolves with the stored image {id, name, width, height}; rejects with an Error whose
 * message is the server's own ("error" in its JSON answer) or a plain description.
 */
export function uploadImage(file, { onProgress, url = "/api/images" } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.responseType = "text";
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress?.(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON: described below */
      }
      if (xhr.status >= 200 && xhr.status < 300 && body && body.id) {
        onProgress?.(1);
        resolve(body);
      } else {
        const why = body && typeof body.error === "string" ? body.error : `the server answered ${xhr.status} ${xhr.statusText}`.trim();
        reject(new Error(why));
      }
    });
    xhr.addEventListener("error", () => reject(new Error("the upload failed: the server could not be reached")));
    xhr.addEventListener("abort", () => reject(new Error("the upload was cancelled")));
    const body = new FormData();
    body.append("file", file, file.name);
    xhr.send(body);
  });
}
