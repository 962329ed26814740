"""The gallery page in a real Chromium: the bundled images, uploads, upload errors."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from .conftest import photo_like, png

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BUNDLED = {"astronaut", "camera", "chelsea", "coffee", "rocket"}


def test_gallery_lists_the_bundled_images(server, page):
    listed = server.get_json("/api/images")
    page.goto(server.url + "/")
    cards = page.locator("#gallery .card")
    ids = cards.evaluate_all("cards => cards.map(c => c.dataset.imageId)")
    assert {image["id"] for image in listed} == set(ids)
    names = page.locator("#gallery .card-name").all_text_contents()
    assert set(names) >= BUNDLED
    astronaut = page.locator("#gallery .card", has_text="astronaut")
    assert astronaut.locator(".card-size").text_content() == "512 × 512 px"
    assert astronaut.locator("a").get_attribute("href").startswith("/view/")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#gallery img')].every(img => img.complete && img.naturalWidth > 0)"
    )
    assert page.locator("#image-count").text_content() == str(len(listed))


def test_an_uploaded_image_appears_with_progress(server, page):
    pixels = photo_like(96, 128, seed=int(np.random.default_rng().integers(1 << 30)))
    page.goto(server.url + "/")
    before = page.locator("#gallery .card").count()
    page.set_input_files("#upload-file", files=[{"name": "upload-test.png", "mimeType": "image/png",
                                                 "buffer": png(pixels)}])
    card = page.locator("#gallery .card").first
    page.wait_for_function(f"() => document.querySelectorAll('#gallery .card').length === {before + 1}")
    assert "upload-test" in card.locator(".card-name").text_content()
    assert card.locator(".card-size").text_content() == "128 × 96 px"
    assert page.locator("#upload-percent").text_content() == "Done"
    assert page.locator("#upload-progress").get_attribute("value") == "100"
    assert page.locator("#upload-error").is_hidden()
    page.wait_for_function(
        "() => { const img = document.querySelector('#gallery .card img');"
        " return img.complete && img.naturalWidth > 0; }"
    )
    new_id = card.get_attribute("data-image-id")
    assert new_id in {image["id"] for image in server.get_json("/api/images")}
    # It survives a reload: the server stored it.
    page.reload()
    assert page.locator(f"#gallery .card[data-image-id='{new_id}']").count() == 1


def test_a_dropped_image_is_uploaded(server, page):
    pixels = photo_like(64, 80, seed=int(np.random.default_rng().integers(1 << 30)))
    page.goto(server.url + "/")
    before = page.locator("#gallery .card").count()
    page.evaluate(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
            const zone = document.querySelector("#dropzone");
            zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: data, bubbles: true, cancelable: true}));
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
        }""",
        base64.b64encode(png(pixels)).decode(),
    )
    page.wait_for_function(f"() => document.querySelectorAll('#gallery .card').length === {before + 1}")
    assert "dropped" in page.locator("#gallery .card .card-name").first.text_content()
    assert "is-over" not in (page.locator("#dropzone").get_attribute("class") or "")


def test_the_servers_upload_error_is_shown(server, page, console):
    console.allow("status of 415")  # Chromium logs the rejected request itself
    page.goto(server.url + "/")
    before = page.locator("#gallery .card").count()
    page.set_input_files("#upload-file", files=[{"name": "notes.txt", "mimeType": "text/plain",
                                                 "buffer": b"not an image\n"}])
    error = page.locator("#upload-error")
    error.wait_for(state="visible")
    text = error.text_content()
    assert text.startswith("Could not upload notes.txt: ")
    assert "not an image" in text  # the server's own words, from its JSON {"error": ...}
    assert page.locator("#gallery .card").count() == before
    assert page.locator("#upload-status").is_hidden()
