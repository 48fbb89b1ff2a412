"""Schemathesis hooks (loaded by scripts/schemathesis.toml).

A backup export is a zip: this deserializer opens it and checks what the
format promises (memories.json with a known format version and the
memories list, memories.jsonl.gz with one memory per line), then hands the
archive to the response-schema check as the binary string it is.
"""

import gzip
import io
import json
import zipfile

import schemathesis


@schemathesis.deserializer("application/zip")
def backup_archive(ctx, response):
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = set(archive.namelist())
        if not {"memories.json", "memories.jsonl.gz"} <= names:
            raise ValueError(f"a backup holds memories.json and memories.jsonl.gz, not {sorted(names)}")
        document = json.loads(archive.read("memories.json"))
        lines = gzip.decompress(archive.read("memories.jsonl.gz")).decode().splitlines()
    if document["export_meta"]["version"] != 1:
        raise ValueError(f"unknown backup format {document['export_meta']['version']}")
    if len(lines) != len(document["memories"]):
        raise ValueError(f"memories.jsonl.gz has {len(lines)} lines for {len(document['memories'])} memories")
    return response.content.decode("latin-1")
