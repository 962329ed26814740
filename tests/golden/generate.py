"""Write the golden fixtures of format versions that have none yet (never touches existing ones).

    python -m tests.golden.generate            # every version the encoder writes
    python -m tests.golden.generate --check    # only say what would be written

After a format change: add the new version (hidenet_core's format table), run this,
and commit the new ``.hdn`` files with the updated ``manifest.json``.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from hidenet_core import decode, encode, load_model
from hidenet_core.codec.container import VERSIONS
from tests.golden import CASES, DIR, MANIFEST, MODELS, encode_settings, pixels_sha256, sha256, source_pixels


def format_manifest(manifest: dict) -> str:
    """The manifest as JSON with one line per fixture (readable diffs: a new version adds lines)."""
    lines = ",\n".join("  " + json.dumps(f) for f in manifest["fixtures"])
    rest = {k: v for k, v in manifest.items() if k != "fixtures"}
    head = "".join(f" {json.dumps(k)}: {json.dumps(v)},\n" for k, v in rest.items())
    return "{\n" + head + ' "fixtures": [\n' + lines + "\n ]\n}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; list the missing fixtures")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    old = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {"fixtures": []}
    have = {(f["version"], f["model"], f["case"]) for f in old["fixtures"]}
    new = []
    for version in VERSIONS:
        for model_name in MODELS:
            for case, recipe in CASES.items():
                if (version, model_name, case) in have or version < recipe.get("first_version", 1):
                    continue
                name = f"v{version}-{model_name}-{case}.hdn"
                if (DIR / name).exists():
                    raise SystemExit(f"{name} exists but is not in the manifest: fix by hand, never overwrite")
                entry = {"file": name, "version": version, "model": model_name, "case": case,
                         "source": recipe["source"], "settings": recipe["settings"]}
                print(f"{'missing' if args.check else 'writing'} {name}", file=sys.stderr)
                if args.check:
                    continue
                model = load_model(model_name)
                source = source_pixels(recipe["source"])
                data = encode(source, model, encode_settings(entry))
                entry["source_sha256"] = pixels_sha256(source)
                entry["stream_sha256"] = sha256(data)
                entry["stream_bytes"] = len(data)
                entry["pixels_sha256"] = pixels_sha256(decode(data, model)[-1].image)
                (DIR / name).write_bytes(data)
                new.append(entry)
    if new:
        out = {**old, "fixtures": old["fixtures"] + new}
        MANIFEST.write_text(format_manifest(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
