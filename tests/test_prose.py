"""English prose corpora from Debian documentation: markup cleaning, pinned .deb fetching, deterministic splits,
n-gram decontamination and the ``large`` asset flag. Unit tests use fixture files and a fixture .deb built with
dpkg-deb; the real packages are only in the slow test."""

import gzip
import hashlib
import json
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fakedeb import build_deb

from zett import assets
from zett.assets import corpora, debian
from zett.assets.cli import main as cli_main
from zett.assets.decontam import NgramIndex, ngram_hashes
from zett.assets.prose import (
    clean_html,
    clean_pod,
    clean_rst,
    clean_vimhelp,
    drop_boilerplate,
    keep_paragraph,
)
from zett.assets.registry import EN_PROSE, REGISTRY, Asset, DebPackage

PROSE_A = ("The interpreter reads each line of the program and executes it in order, which makes it easy to "
           "experiment with small fragments of code.")
PROSE_B = ("When the buffer is full the writer blocks until a reader has consumed enough data, so that no "
           "message is ever lost.")

# -- cleaning -------------------------------------------------------------------------------------------------

RST = f"""\
.. SPDX-License-Identifier: GPL-2.0
   a comment that continues

=====================
Reading the manual
=====================

{PROSE_A[:60]}
{PROSE_A[60:]}

.. code-block:: python

   def secret_function_name(x):
       return x + 1

See the :func:`open_the_door <doors.open>` function and ``literal_words`` in `the guide <https://x.org>`_ for
*more* on **this** topic, which is explained in detail in the next sections of the text.

Here is an example that shows the basic usage::

    print("literal block that must vanish")

.. function:: frobnicate(a, b)

   {PROSE_B}

=====  =====
col1   col2
=====  =====
tabled cells
=====  =====

+------+------+
| grid | cell |
+------+------+

>>> doctest_line = 1
1

- A bullet item that is a full sentence and has the words of the language.
* ``GFP_KERNEL`` - both background and direct reclaim are allowed and the
  **default** page allocator behaviour is used by the kernel.
"""


def test_rst_cleaning_keeps_prose_and_drops_markup_code_and_tables():
    text = clean_rst(RST)
    paras = text.split("\n\n")
    assert PROSE_A in paras and PROSE_B in paras  # wrapped lines joined; directive body kept
    assert "See the open_the_door function and literal_words in the guide for more on this topic" in text
    assert "A bullet item that is a full sentence and has the words of the language." in paras
    assert ("GFP_KERNEL - both background and direct reclaim are allowed and the default page allocator "
            "behaviour is used by the kernel.") in paras  # continuation lines align with the item's text
    assert "Here is an example that shows the basic usage:" in text
    for gone in ("secret_function_name", "literal block", "frobnicate", "SPDX", "comment", "col1", "tabled",
                 "grid", "doctest_line", "=====", "``", ":func:", "https://", "*", "Reading the manual"):
        assert gone not in text, gone


POD = f"""\
=head1 NAME

perlthing - the thing

=head1 DESCRIPTION

{PROSE_A.replace("program", "B<program>").replace("code", "C<< code >>")}

    my $verbatim_code = 1;

=begin html

<p>html_only_region is not prose for us to keep around here</p>

=end html

See L<the manual page|perlfunc/open> and L<perlop/"Quote Operators"> for the E<lt>details of the rules E<gt>.

=cut
"""


def test_pod_cleaning_resolves_formatting_codes_and_drops_verbatim():
    text = clean_pod(POD)
    assert PROSE_A in text.split("\n\n")
    assert "See the manual page and Quote Operators in perlop for the <details of the rules >." in text
    for gone in ("verbatim_code", "html_only_region", "B<", "C<<", "=head1", "=cut"):
        assert gone not in text, gone


HTML = f"""<html><head><title>A page title</title><style>p {{color: red}}</style></head><body>
<nav><p>Navigation menu entries that should be dropped from the page text</p></nav>
<main>
<h1>Chapter one</h1>
<p>{PROSE_A[:50]}<code>inline</code>{PROSE_A[50:]}</p>
<pre>for (i = 0; i &lt; n; i++) hidden_code();</pre>
<table><tr><td>a table cell with several words in it for you</td></tr></table>
<ul><li>{PROSE_B}</li></ul>
</main>
<footer><p>Copyright notice and footer text that is on every single page</p></footer>
</body></html>"""


def test_html_cleaning_takes_the_main_content_only():
    text = clean_html(HTML)
    assert text.split("\n\n") == [PROSE_A[:50] + "inline" + PROSE_A[50:], PROSE_B]
    # Without a <main> element the whole body counts, still without navigation, tables, code or footers.
    text = clean_html(HTML.replace("<main>", "<div>").replace("</main>", "</div>"))
    assert "hidden_code" not in text and "Navigation" not in text and "table cell" not in text
    assert "Copyright" not in text and PROSE_B in text
    texinfo = f'<div class="header"><p>Next: <a>The next section of the manual</a>, Up: <a>Top</a></p></div><p>{PROSE_B}</p>'
    assert clean_html(texinfo) == PROSE_B


VIMHELP = f"""\
*usr_05.txt*\tFor Vim version 9.0.  Last change: 2022 Jun 03

==============================================================================
*05.1*\tThe vimrc file\t\t\t\t\t*vimrc-intro*

{PROSE_A.replace(", which", "," + chr(10) + "which")} See |defaults.vim| for the details. >

\tsource $VIMRUNTIME/secret_example.vim
\tset incsearch
<{PROSE_B}

HEADER LINE THAT IS ONLY A TITLE ~
"""


def test_vim_help_cleaning_drops_tags_and_examples():
    text = clean_vimhelp(VIMHELP)
    assert text.split("\n\n") == [PROSE_A + " See defaults.vim for the details.", PROSE_B]


def test_paragraph_filter_and_boilerplate_removal():
    assert keep_paragraph(PROSE_A)
    assert not keep_paragraph("x = foo(bar, baz[0]) + 1; return {k: v for k, v in d}")
    assert not keep_paragraph("Installation")
    assert not keep_paragraph("1.0 2.0 3.0 4.0 5.0 6.0")
    docs = [f"Unique paragraph {i} of this document.\n\nNext Previous Home Up" for i in range(6)]
    cleaned = drop_boilerplate(docs, min_docs=5)
    assert cleaned == [f"Unique paragraph {i} of this document." for i in range(6)]
    assert drop_boilerplate(docs[:4], min_docs=5) == docs[:4]


# -- decontamination ------------------------------------------------------------------------------------------

def _brute(s: str, n: int) -> list[int]:
    out = []
    for i in range(len(s) - n + 1):
        v = 0
        for ch in s[i:i + n]:
            v = (v * 0x100000001B3 + ord(ch) + 1) % 2**64
        out.append(v)
    return out


def test_rolling_hash_equals_the_polynomial_hash_of_every_window():
    rng = random.Random(0)
    text = "".join(rng.choice("ab cdé\n\tж") for _ in range(300))
    norm = " ".join(text.split())
    assert ngram_hashes(text, 20).tolist() == _brute(norm, 20)
    assert len(ngram_hashes("short", 50)) == 0


def test_decontamination_drops_a_document_sharing_50_characters_and_keeps_others():
    evaluation = "def add(a, b):\n    return a + b  # the sum of both arguments, computed exactly once\n"
    span = " ".join(evaluation.split())[10:60]  # 50 characters of the evaluation text
    index = NgramIndex([evaluation, "short one"])
    assert index.contaminated(f"{PROSE_A} Quoting it:   {span.replace(' ', chr(10) + '  ')} and more.")
    assert not index.contaminated(f"{PROSE_A} {span[:49]} and more.")  # 49 characters are not enough
    assert not index.contaminated(PROSE_B)
    assert not NgramIndex([]).contaminated(PROSE_A)


# -- a fixture Debian package ---------------------------------------------------------------------------------

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed")


def _doc_files() -> dict[str, str]:
    """40 documentation files: rst, html, pod, gzipped text, plus files the asset must not take."""
    rng = random.Random(1)
    words = ("the system reads a file and writes the result to the output when it is ready for use by "
             "another process which can then continue with its own work on the data").split()
    files = {}
    for i in range(40):
        body = "\n\n".join(" ".join(rng.choice(words) for _ in range(40)).capitalize() + "." for _ in range(4))
        files[f"usr/share/doc/fake/rst/doc{i:02d}.rst.txt"] = f"Title {i}\n=======\n\n{body}\n"
    files["usr/share/doc/fake/html/page.html"] = f"<html><body><main><p>{PROSE_B} {PROSE_A}</p></main></body></html>"
    files["usr/share/doc/fake/html/_modules/skip.html"] = f"<p>{PROSE_A}</p>"
    files["usr/share/doc/fake/notes.txt.gz"] = PROSE_A + "\n\n" + PROSE_B * 2
    files["usr/share/doc/fake/image.png"] = "not text"
    return files


def _fake_deb(tmp_path: Path) -> Path:
    files = {rel: gzip.compress(text.encode(), mtime=0) if rel.endswith(".gz") else text.encode()
             for rel, text in _doc_files().items()}
    return build_deb(tmp_path, files, "1.0-1", "fake-doc_1.0-1_all.deb")


@pytest.fixture
def fake_prose(tmp_path, monkeypatch):
    """A prose asset whose package `apt-get download` serves from a fixture .deb; evaluation texts are fixtures."""
    deb = _fake_deb(tmp_path)
    calls = []
    real_run = subprocess.run

    def fake_run(cmd, *args, **kwargs):
        if cmd[:2] == ["apt-get", "download"]:
            calls.append(cmd[2])
            shutil.copy(deb, Path(kwargs["cwd"]) / deb.name)
            return subprocess.CompletedProcess(cmd, 0, "", "")
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(debian.subprocess, "run", fake_run)
    pkg = DebPackage("fake-doc", "1.0-1", hashlib.sha256(deb.read_bytes()).hexdigest(), deb.stat().st_size,
                     (("usr/share/doc/fake/rst/**/*.rst.txt", "rst"), ("usr/share/doc/fake/**/*.html", "html"),
                      ("usr/share/doc/fake/*.txt.gz", "text")), exclude=("*/_modules/*",))
    asset = Asset("fake-prose", "corpus", "test", "MIT", debs=(pkg,), build="debian_prose", large=True)
    monkeypatch.setitem(REGISTRY, "fake-prose", asset)
    monkeypatch.setenv("ZETT_HOME", str(tmp_path / "home"))
    evaluation = [PROSE_A, "def f():\n    return 1\n"]
    monkeypatch.setattr(corpora, "_eval_texts", lambda: list(evaluation))
    return asset, calls, evaluation


@needs_dpkg
def test_prose_asset_fetches_the_pinned_version_and_takes_the_selected_files(fake_prose):
    asset, calls, _ = fake_prose
    root = assets.fetch("fake-prose")
    assert calls == ["fake-doc=1.0-1"]
    src = root / "src"
    taken = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    assert len(taken) == 42
    assert "html/usr/share/doc/fake/html/page.html" in taken and "text/usr/share/doc/fake/notes.txt" in taken
    assert not any("_modules" in t or t.endswith(".png") for t in taken)
    assert (src / "text/usr/share/doc/fake/notes.txt").read_text().startswith(PROSE_A)  # decompressed
    assert assets.verify("fake-prose", deep=True)


@needs_dpkg
def test_prose_asset_with_wrong_checksum_fails_naming_asset_and_fix(fake_prose, monkeypatch):
    asset, _, _ = fake_prose
    bad = DebPackage(**{**asset.debs[0].__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(REGISTRY, "fake-prose", Asset(**{**asset.__dict__, "debs": (bad,)}))
    with pytest.raises(assets.AssetError, match="'fake-prose'.*registry pins 0000.*re-pin"):
        assets.fetch("fake-prose")
    assert not assets.asset_dir("fake-prose").exists()


@needs_dpkg
def test_prose_corpus_is_deterministic_disjoint_nonempty_and_decontaminated(fake_prose, monkeypatch):
    _, _, evaluation = fake_prose
    splits = {s: assets.load_corpus("fake-prose", s) for s in ("train", "validation", "test")}
    paths = {s: set(d["path"]) for s, d in splits.items()}
    assert all(paths.values())
    assert not paths["train"] & paths["validation"] and not paths["train"] & paths["test"]
    assert not paths["validation"] & paths["test"]
    for s, d in splits.items():
        assert all(corpora.split_of(p) == s for p in d["path"])
        assert all(len(t) >= corpora.MIN_DOC_CHARS and "=======" not in t and "Title" not in t for t in d["text"])
    assert assets.load_corpus("fake-prose", "train")["text"] == splits["train"]["text"]

    # Every document containing PROSE_A (an evaluation text) is out of train, and only those.
    everything = corpora._cleaned("fake-prose", assets.path("fake-prose"))[1]
    contaminated = {r["path"] for r in everything if r["split"] == "train" and PROSE_A in r["text"]}
    assert contaminated  # the fixture puts PROSE_A into train documents
    assert paths["train"] == {r["path"] for r in everything if r["split"] == "train"} - contaminated
    stats = corpora.decontamination_stats("fake-prose")
    assert stats["dropped_docs"] == len(contaminated) and set(stats["dropped_paths"]) == contaminated
    assert stats["train_docs"] == len(contaminated) + len(paths["train"])

    # New evaluation texts invalidate the cached result.
    evaluation[:] = ["completely unrelated evaluation text that shares nothing with any document at all"]
    assert set(assets.load_corpus("fake-prose", "train")["path"]) == paths["train"] | contaminated
    assert corpora.decontamination_stats("fake-prose")["dropped_docs"] == 0


@needs_dpkg
def test_a_new_cleaner_version_recleans_and_removes_the_old_cache(fake_prose, monkeypatch):
    from zett.assets import prose

    first = assets.load_corpus("fake-prose", "train")["text"]
    cache = assets.home() / "cache" / "prose"
    before = sorted(p.name for p in cache.iterdir())
    assert len(before) == 2  # cleaned documents + decontamination result
    monkeypatch.setattr(prose, "CLEANER_VERSION", "test-next")
    assert assets.load_corpus("fake-prose", "train")["text"] == first  # same cleaner code, same documents
    after = sorted(p.name for p in cache.iterdir())
    assert len(after) == 2 and not set(before) & set(after)


@needs_dpkg
def test_combined_corpus_concatenates_its_parts_with_their_splits(fake_prose, monkeypatch):
    monkeypatch.setattr("zett.assets.registry.EN_PROSE", ("fake-prose",))
    for split in ("train", "test"):
        part = assets.load_corpus("fake-prose", split)
        combined = assets.load_corpus("en-prose", split)
        assert combined["text"] == part["text"] and set(combined["source"]) == {"fake-prose"}
    stats = corpora.decontamination_stats("en-prose")
    assert stats["dropped_docs"] == corpora.decontamination_stats("fake-prose")["dropped_docs"] > 0
    assert all(p.startswith("fake-prose:") for p in stats["dropped_paths"])


def test_take_files_matches_globs_excludes_and_decompresses(tmp_path):
    root = tmp_path / "x"
    for rel, text in _doc_files().items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(gzip.compress(text.encode()) if rel.endswith(".gz") else text.encode())
    pkg = DebPackage("fake-doc", "1", "0" * 64, 1, (("usr/share/doc/fake/**/*.html", "html"),),
                     exclude=("*/_modules/*",))
    asset = Asset("fake-prose", "corpus", "t", "MIT", debs=(pkg,), build="debian_prose")
    assert debian.take_files(asset, pkg, root, tmp_path / "out") == 1
    none = DebPackage("fake-doc", "1", "0" * 64, 1, (("usr/share/nothing/*.rst", "rst"),))
    with pytest.raises(assets.AssetError, match="'fake-prose'.*no file"):
        debian.take_files(asset, none, root, tmp_path / "out2")


# -- registry and the large flag ------------------------------------------------------------------------------

def test_prose_assets_are_pinned_large_corpora_and_en_prose_unites_them():
    assert len(EN_PROSE) >= 5
    for name in EN_PROSE:
        a = REGISTRY[name]
        assert a.kind == "corpus" and a.build == "debian_prose" and a.large and len(a.debs) == 1
    assert REGISTRY["en-prose"].build == "union" and REGISTRY["en-prose"].large
    assert not any(REGISTRY[n].large for n in ("botchan", "stdlib-code", "glib", "gtk", "smollm2-135m"))


def test_fetch_all_skips_large_assets_unless_asked(monkeypatch, capsys):
    fetched = []
    monkeypatch.setattr("zett.assets.cli.fetch", lambda n, **kw: fetched.append(n) or Path("/x"))
    assert cli_main(["fetch", "--all"]) == 0
    large = {n for n, a in REGISTRY.items() if a.large}
    gated = {n for n, a in REGISTRY.items() if a.licence_terms}
    assert large and not large & set(fetched)
    assert set(fetched) == set(REGISTRY) - large - gated
    assert "skipping linux-doc: large asset" in capsys.readouterr().err
    fetched.clear()
    assert cli_main(["fetch", "--all", "--include-large"]) == 0
    assert set(fetched) == set(REGISTRY) - gated
    fetched.clear()
    assert cli_main(["fetch", "python-doc"]) == 0 and fetched == ["python-doc"]  # by name: always


def test_list_shows_the_large_flag(capsys, monkeypatch):
    monkeypatch.setattr("zett.assets.cli.is_cached", lambda n: False)
    assert cli_main(["list"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "linux-doc" in line)
    assert "large" in row and "linux-doc-6.1" in row
    assert "large" not in next(line for line in out.splitlines() if "botchan" in line)


# -- the real packages (slow: about 130 MB from the Debian mirror, minutes of cleaning) -------------------------

@pytest.mark.slow
def test_real_prose_corpora_are_english_disjoint_and_decontaminated():
    from zett.assets.decontam import NgramIndex, eval_texts

    index = NgramIndex(eval_texts())
    total = 0
    for name in EN_PROSE:
        splits = {s: assets.load_corpus(name, s) for s in ("train", "validation", "test")}
        paths = {s: set(d["path"]) for s, d in splits.items()}
        assert all(paths.values()), name
        assert not paths["train"] & paths["validation"] and not paths["train"] & paths["test"]
        train = splits["train"]["text"]
        total += sum(map(len, train))
        assert not any(index.contaminated(t) for t in train[::max(1, len(train) // 50)]), name
        assert np.mean([keep_paragraph(p) for t in train[:20] for p in t.split("\n\n")]) == 1.0
        assert json.loads(json.dumps(corpora.decontamination_stats(name)))["train_docs"] >= len(train)
    assert total > 30_000_000
