"""The COCO caption evaluation tools the official scorers use: PTB tokenizer, METEOR 1.5, ROUGE-L, CIDEr-D.

They come from the ``pycocoevalcap`` package (github.com/salaniz/pycocoevalcap), whose wheel carries
the Stanford CoreNLP 3.4.1 jar (the PTB tokenizer), the METEOR 1.5 jar and its English paraphrase
table: the same files, byte for byte, as the copy bundled in the E2E challenge scorer, and the same
Python code apart from Python 2 compatibility. The tokenizer and METEOR are Java programs, run
offline by a local Java runtime (Debian's ``default-jre-headless``; ``make test`` and ``make book``
install it). ROUGE-L and CIDEr-D are plain Python.

Texts go to the Java programs one per line (the tokenizer) or one per request line (METEOR), so a
line break inside a text is turned into a space first, as the COCO tokenizer itself does.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
from typing import Mapping, Sequence

__all__ = ["JavaNotFoundError", "java_available", "require_java", "java_version", "ptb_tokenize", "meteor",
           "rouge_l", "cider_d"]

JAVA_HINT = ("install a Java runtime, e.g. Debian's package default-jre-headless "
             "(apt-get install default-jre-headless; make test and make book install it)")


class JavaNotFoundError(RuntimeError):
    """A metric needs a Java runtime and none is on PATH."""


def java_available() -> bool:
    """True when a ``java`` executable is on PATH."""
    return shutil.which("java") is not None


def require_java(what: str) -> None:
    """Raise :class:`JavaNotFoundError` naming ``what`` when no Java runtime is available."""
    if not java_available():
        raise JavaNotFoundError(f"{what} runs a Java program and no `java` is on PATH: {JAVA_HINT}")


def java_version() -> str:
    """The first line of ``java -version`` (empty when Java is absent)."""
    if not java_available():
        return ""
    done = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[0] if lines else ""


def _one_line(text: str) -> str:
    return " ".join(text.split("\n"))


def ptb_tokenize(texts: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Every text of ``{id: [text, ...]}`` through the COCO PTB tokenizer (lower case, punctuation
    tokens dropped), keeping ids and order. The tokenizer's progress line on stderr is kept out of
    the book; when the tokenizer does not return one line per text, the error shows it."""
    require_java("The PTB tokenizer of the COCO caption evaluation (E2E METEOR, ROUGE-L, CIDEr)")
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    request = {key: [{"caption": _one_line(t)} for t in values] for key, values in texts.items()}
    with tempfile.TemporaryFile() as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)  # the Java child inherits this descriptor
        try:
            tokenized = PTBTokenizer().tokenize(request)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        stderr = log.read().decode("utf-8", "replace").strip()
    for key, values in texts.items():
        if len(tokenized.get(key, ())) != len(values):
            raise RuntimeError(f"the PTB tokenizer returned {len(tokenized.get(key, ()))} lines for input {key!r} "
                               f"instead of {len(values)}; its messages: {stderr[-500:]}")
    return {key: list(tokenized[key]) for key in texts}


_METEOR_LOCK = threading.Lock()
_meteor_scorer = None


def _meteor():
    """One METEOR jar per process, started on first use: loading its paraphrase table takes seconds,
    and the jar keeps no state between requests (each EVAL aggregates only the statistics it is sent)."""
    global _meteor_scorer
    from pycocoevalcap.meteor.meteor import Meteor

    if _meteor_scorer is None or _meteor_scorer.meteor_p.poll() is not None:
        _meteor_scorer = Meteor()
        atexit.register(_stop, _meteor_scorer.meteor_p)
    return _meteor_scorer


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.stdin.close()
        process.kill()
        process.wait()


def meteor(references: Mapping[str, Sequence[str]], hypotheses: Mapping[str, str]) -> float:
    """Corpus METEOR 1.5 (``-l en -norm``; each output against its best reference) from the jar.

    The score aggregates the statistics of all segments, as the jar's file mode does."""
    require_java("METEOR 1.5")
    if list(references) != list(hypotheses):
        raise ValueError("meteor: references and hypotheses must have the same ids in the same order")
    for key, refs in references.items():
        if any("|||" in r for r in refs):
            raise ValueError(f"meteor: a reference of input {key!r} contains '|||', the jar's field separator")
    with _METEOR_LOCK:
        scorer = _meteor()
        try:
            score, _ = scorer.compute_score({k: [_one_line(r) for r in v] for k, v in references.items()},
                                            {k: [_one_line(h)] for k, h in hypotheses.items()})
        except BaseException:
            # A half-answered request leaves the jar out of step: stop it (the next call starts a new
            # one) and free the wrapper's own lock, which it does not release on an error.
            global _meteor_scorer
            _stop(scorer.meteor_p)
            if scorer.lock.locked():
                scorer.lock.release()
            _meteor_scorer = None
            raise
    return float(score)


def rouge_l(references: Mapping[str, Sequence[str]], hypotheses: Mapping[str, str]) -> float:
    """Mean over inputs of ROUGE-L (LCS F-measure, beta 1.2, best precision and recall over references)."""
    from pycocoevalcap.rouge.rouge import Rouge

    score, _ = Rouge().compute_score({k: list(v) for k, v in references.items()},
                                     {k: [h] for k, h in hypotheses.items()})
    return float(score)


def cider_d(references: Mapping[str, Sequence[str]], hypotheses: Mapping[str, str]) -> float:
    """CIDEr-D (n-grams 1-4, tf-idf with document frequencies from these references, Gaussian length
    penalty sigma 6, clipped counts, times 10): the COCO ``Cider`` scorer."""
    from pycocoevalcap.cider.cider import Cider

    score, _ = Cider().compute_score({k: list(v) for k, v in references.items()},
                                     {k: [h] for k, h in hypotheses.items()})
    return float(score)
