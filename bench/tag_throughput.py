"""Tagging throughput: N real PubMed abstracts (the titles and abstracts of PubTator corpora,
repeated to make up N) through the real `immunofeed tag`, start-up included, in one process and
on every core, against bare spacy.blank("en") tokenisation of the same texts in one process,
and the same with the tagger's larger tokenizer cache (nlp/pipeline.py TOKENIZER_CACHE), which
with repeated texts splits no piece of text twice.

    .venv/bin/python bench/tag_throughput.py [--abstracts 20000] [--runs 3] [CORPUS ...]

CORPUS files are PubTator text (PMID|t|title and PMID|a|abstract lines); by default the NCBI
Disease and BC5CDR training and development sets beside the checkout (../shared/data). The
commands take turns, --runs rounds, and each one's fastest run counts, which keeps other load
on the machine out of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nlp.pipeline import TOKENIZER_CACHE  # noqa: E402

IMMUNOFEED = str(Path(sys.executable).parent / "immunofeed")
SHARED = ROOT.parent / "shared" / "data"
DEFAULT_CORPORA = [
    SHARED / "ncbi-disease" / "NCBItrainset_corpus.txt",
    SHARED / "ncbi-disease" / "NCBIdevelopset_corpus.txt",
    SHARED / "bc5cdr" / "CDR_TrainingSet.PubTator.txt",
    SHARED / "bc5cdr" / "CDR_DevelopmentSet.PubTator.txt",
]

# Bare tokenisation: what the target compares against, timed the same way (a fresh process
# that imports spaCy, makes the blank pipeline and reads the same JSON Lines).
BARE = """
import json, sys
import spacy
nlp = spacy.blank("en")
if len(sys.argv) > 2:
    nlp.tokenizer.max_cache_size = int(sys.argv[2])
texts = (json.loads(line)["text"] for line in open(sys.argv[1], encoding="utf-8"))
count = sum(1 for _ in nlp.pipe(texts))
print(count)
"""


def abstracts(paths: list[Path]) -> list[str]:
    """Title and abstract of every document, joined by a space as PubTator offsets count."""
    texts: list[str] = []
    for path in paths:
        titles: dict[str, str] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            pmid, kind, rest = (line.split("|", 2) + ["", ""])[:3]
            if kind == "t":
                titles[pmid] = rest
            elif kind == "a" and pmid in titles:
                texts.append(f"{titles.pop(pmid)} {rest}")
    return texts


def timed(command: list[str], stdin_path: Path | None) -> float:
    with open(stdin_path or os.devnull, encoding="utf-8") as stdin:
        started = time.perf_counter()
        done = subprocess.run(command, stdin=stdin, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpora", nargs="*", type=Path, default=DEFAULT_CORPORA)
    parser.add_argument("--abstracts", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    missing = [str(p) for p in args.corpora if not p.is_file()]
    if missing:
        sys.exit(f"no such corpus file: {', '.join(missing)} (give PubTator files as arguments)")
    texts = abstracts(args.corpora)
    if not texts:
        sys.exit("the corpus files hold no abstracts")
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        lines = Path(tmp) / "abstracts.jsonl"
        with lines.open("w", encoding="utf-8") as out:
            for i in range(args.abstracts):
                out.write(json.dumps({"id": i, "text": texts[i % len(texts)]}) + "\n")
        print(f"{args.abstracts:,} abstracts ({len(texts):,} distinct), {cores} cores, "
              f"best of {args.runs} runs, start-up included")
        commands = {"spacy.blank('en') tokenisation, 1 process":
                    ([sys.executable, "-c", BARE, str(lines)], None),
                    f"  the same, caching {TOKENIZER_CACHE:,} pieces":
                    ([sys.executable, "-c", BARE, str(lines), str(TOKENIZER_CACHE)], None)}
        for jobs in sorted({1, cores}):
            commands[f"immunofeed tag --jobs {jobs}"] = (
                [IMMUNOFEED, "tag", "--jobs", str(jobs)], lines)
        # the commands take turns, so a slow spell of the machine falls on all of them
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, (command, stdin) in commands.items():
                times[name].append(timed(command, stdin))
    rows = [(name, min(runs)) for name, runs in times.items()]
    bare = rows[0][1]
    for name, elapsed in rows:
        print(f"  {name:<42} {elapsed:6.1f} s  {args.abstracts / elapsed:7.0f} abstracts/s  "
              f"{elapsed / bare:4.2f}x the bare tokenisation time")


if __name__ == "__main__":
    main()
