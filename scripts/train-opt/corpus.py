#!/usr/bin/python3
"""Builds the training corpus of kvsim's small OPT from Debian packages, deterministically.

Sources: the King James Bible (`bible-kjv`: one document per chapter, one verse a line,
verse references dropped) and the `fortunes` package (one document per fortune; the
ascii-art files are left out, being pictures rather than prose). Each document gets a
stable id ("kjv:Ge1", "fortunes:wisdom:17"); the SHA-256 of that id sends one document
in twenty to the held-out split, so the split never depends on file order or on Python.

Writes to OUT_DIR:
  train.jsonl, heldout.jsonl   {"id", "text"} per document, sorted by id
  train.txt                    the training text, documents separated by blank lines
                               (the tokenizer is trained on it)
  demo.jsonl                   held-out KJV chapters cut for capture and validation:
                               "document" is the chapter's opening verses, "summary" the
                               verses that follow (the true continuation)
  corpus.json                  counts and the SHA-256 of every file written
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys

FORTUNE_DIR = "/usr/share/games/fortunes"
SKIP_FORTUNES = {"art", "ascii-art"}
HELDOUT_EVERY = 20


def kjv_chapters():
    out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True, capture_output=True).stdout
    ref = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")
    chapters = {}
    order = []
    for line in out.decode("utf-8").splitlines():
        m = ref.match(line)
        if not m:
            if line.strip():
                raise SystemExit(f"corpus: unexpected line from bible: {line!r}")
            continue
        key = f"kjv:{m.group(1)}{m.group(2)}"
        if key not in chapters:
            chapters[key] = []
            order.append(key)
        chapters[key].append(m.group(4).strip())
    return [(k, chapters[k]) for k in order]


def fortunes():
    docs = []
    for name in sorted(os.listdir(FORTUNE_DIR)):
        if not name.endswith(".u8") or name[:-3] in SKIP_FORTUNES:
            continue
        with open(os.path.join(FORTUNE_DIR, name), encoding="utf-8") as f:
            entries = f.read().split("\n%\n")
        for i, e in enumerate(entries):
            text = "\n".join(l.rstrip() for l in e.replace("\t", "    ").strip("\n%").split("\n")).strip()
            if text:
                docs.append((f"fortunes:{name[:-3]}:{i}", text))
    return docs


def heldout(doc_id):
    return int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big") % HELDOUT_EVERY == 0


def demo_record(doc_id, verses, prompt_chars, ref_chars):
    """The opening verses of a chapter (at least prompt_chars) and what follows."""
    n, size = 0, 0
    while n < len(verses) and size < prompt_chars:
        size += len(verses[n]) + 1
        n += 1
    rest, m, size = verses[n:], 0, 0
    while m < len(rest) and size < ref_chars:
        size += len(rest[m]) + 1
        m += 1
    if n == len(verses) or m == 0:
        return None
    return {"id": doc_id, "document": "\n".join(verses[:n]), "summary": "\n".join(rest[:m])}


def write(path, text, digests):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    digests[os.path.basename(path)] = hashlib.sha256(text.encode()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--demo-docs", type=int, default=16, help="held-out chapters in demo.jsonl")
    ap.add_argument("--demo-prompt-chars", type=int, default=1400)
    ap.add_argument("--demo-ref-chars", type=int, default=300)
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)

    kjv = kjv_chapters()
    docs = [(k, "\n".join(v)) for k, v in kjv] + fortunes()
    docs.sort()
    train = [(k, t) for k, t in docs if not heldout(k)]
    held = [(k, t) for k, t in docs if heldout(k)]

    demo = []
    for k, verses in sorted(kjv):
        if heldout(k) and len(demo) < a.demo_docs:
            r = demo_record(k, verses, a.demo_prompt_chars, a.demo_ref_chars)
            if r:
                demo.append(r)

    digests = {}
    jl = lambda rows: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    write(os.path.join(a.out_dir, "train.jsonl"), jl({"id": k, "text": t} for k, t in train), digests)
    write(os.path.join(a.out_dir, "heldout.jsonl"), jl({"id": k, "text": t} for k, t in held), digests)
    write(os.path.join(a.out_dir, "train.txt"), "\n\n".join(t for _, t in train) + "\n", digests)
    write(os.path.join(a.out_dir, "demo.jsonl"), jl(demo), digests)
    summary = {
        "documents": {"train": len(train), "heldout": len(held), "demo": len(demo)},
        "bytes": {"train": sum(len(t.encode()) for _, t in train), "heldout": sum(len(t.encode()) for _, t in held)},
        "kjv_chapters": len(kjv),
        "sha256": digests,
    }
    with open(os.path.join(a.out_dir, "corpus.json"), "w") as f:
        json.dump(summary, f, indent=1)
    json.dump(summary, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
