#!/usr/bin/env python
"""How the demo sample was cut from the project's copy of the public datasets
(../shared/data, see its README for sources and commits). Kept for provenance;
the demo itself only reads the files next to this script.

    python examples/demo_data/make_sample.py ../shared/data examples/demo_data
"""

import os
import sys


def head_conll(src, dst, n):
    """The first n sentences of a token<TAB>tag file."""
    out, count = [], 0
    with open(src, encoding="utf-8") as f:
        for line in f:
            out.append(line)
            if line.strip() == "":
                count += 1
                if count == n:
                    break
    write(dst, out)


def lines(src, start, stop):
    with open(src, encoding="utf-8") as f:
        return f.readlines()[start:stop]


def write(dst, rows):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "w", encoding="utf-8") as f:
        f.writelines(rows)


def main(shared, out):
    # WikiAnn (Wikipedia text, CC BY-SA): English and Swahili
    for lang, folder in (("en", "ner/en"), ("sw", "ner/sw-wikiann")):
        head_conll(f"{shared}/{folder}/train.conll", f"{out}/ner/{lang}/train.conll", 300)
        head_conll(f"{shared}/{folder}/dev.conll", f"{out}/ner/{lang}/dev.conll", 100)
    # AfriSenti (CC BY 4.0): Swahili and Yoruba tweets
    for lang in ("sw", "yo"):
        write(f"{out}/sentiment/{lang}/train.tsv", lines(f"{shared}/sentiment/afrisenti-{lang}/train.tsv", 0, 300))
        write(f"{out}/sentiment/{lang}/dev.tsv", lines(f"{shared}/sentiment/afrisenti-{lang}/dev.tsv", 0, 100))
    # NTREX-128 (CC BY-SA 4.0): English-Swahili news; lines 401-1000 of the Swahili side as unlabelled text
    for side, lang in (("src", "en"), ("tgt", "sw")):
        write(f"{out}/mt/train.{lang}", lines(f"{shared}/mt/en-sw/train.{side}", 0, 400))
        write(f"{out}/mt/dev.{lang}", lines(f"{shared}/mt/en-sw/dev.{side}", 0, 100))
    write(f"{out}/mlm/sw.txt", lines(f"{shared}/mt/en-sw/train.tgt", 400, 1000))


if __name__ == "__main__":
    main(*sys.argv[1:3])
