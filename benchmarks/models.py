"""The random models every benchmark loads: one builder each, saved in Hugging Face layout.

The weights are random; only the shapes matter to speed. `save_readable_t5` gives the T5 a
tokenizer that reads its own token names back ("t17 t4005" -> [17, 4005, EOS]), so a benchmark
can send exact token ids as text to any server, and every server tokenizes them the same way.
"""
from __future__ import annotations

from pathlib import Path

import torch

# The bundled demo models, for benchmarks that measure them rather than a random model.
DEMO_REWRITER = Path(__file__).resolve().parent.parent / "models" / "feedback-rewriter"
DEMO_CLASSIFIER = DEMO_REWRITER.parent / "feedback-classifier"
# google/flan-t5-small's shape; the weights are random.
FLAN_T5_SMALL = dict(vocab_size=32128, d_model=512, d_kv=64, d_ff=1024, num_layers=8,
                     num_decoder_layers=8, num_heads=6, feed_forward_proj="gated-gelu",
                     tie_word_embeddings=False, relative_attention_num_buckets=32,
                     relative_attention_max_distance=128, dropout_rate=0.0,
                     decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
# google/electra-small-discriminator's shape.
ELECTRA_SMALL = dict(embedding_size=128, hidden_size=256, num_hidden_layers=12,
                     num_attention_heads=4, intermediate_size=1024, max_position_embeddings=512)
FIRST_WORD_ID = 3  # after <pad>, </s>, <unk>


def save_random_t5(path: Path, seed: int = 0, **overrides) -> Path:
    """A random T5 with a word-level tokenizer ("<pad>", "</s>", "<unk>", "t3", "t4", ...)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    options = {**FLAN_T5_SMALL, **overrides}
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(T5Config(**options)).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    names = ["<pad>", "</s>", "<unk>"] + [f"t{i}" for i in range(FIRST_WORD_ID, options["vocab_size"])]
    tokenizer = Tokenizer(models.WordLevel({name: i for i, name in enumerate(names)}, unk_token="<unk>"))
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(path)
    return path


def save_readable_t5(path: Path, seed: int = 0, **overrides) -> Path:
    """save_random_t5 whose tokenizer splits on spaces and ends every input with </s>: the text
    `ids_as_text(ids)` tokenizes back to ids + [EOS] on every server. Its output is text too:
    the random weights made greedy decoding repeat <pad> for half the prompts, which decodes to
    nothing, so a stream of it has no pieces to time; <pad> and <unk> are never the likeliest
    token here (their lm_head rows are zero: logit 0, far below the largest of 32k random ones)."""
    from tokenizers import Tokenizer, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    save_random_t5(path, seed=seed, **overrides)
    never_pad(path)
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                             special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>", model_max_length=512).save_pretrained(path)
    return path


def never_pad(path: Path, ids: tuple[int, ...] = (0, 2)) -> Path:
    """Zero the lm_head rows of `ids` (<pad>, <unk>) of the T5 saved at `path`, so that greedy
    decoding never picks them: a random T5 otherwise tends to repeat <pad>, which decodes to no
    text, and a stream of it would have nothing to time."""
    from transformers import T5ForConditionalGeneration

    model = T5ForConditionalGeneration.from_pretrained(path)
    with torch.no_grad():
        model.lm_head.weight[list(ids)] = 0
    model.save_pretrained(path, safe_serialization=True)
    return path


def ids_as_text(ids: list[int]) -> str:
    """The text a save_readable_t5 tokenizer reads as these ids (EOS added by the tokenizer)."""
    return " ".join(f"t{i}" for i in ids)


def save_random_lora(base_dir: Path, path: Path, seed: int = 0, b_scale: float = 0.1, **options) -> Path:
    """A PEFT LoRA adapter (LoraConfig(**options)) of the encoder-decoder saved at base_dir (any
    family), with random B weights: PEFT starts B at zero, and an adapter whose update is zero
    would prove nothing."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSeq2SeqLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForSeq2SeqLM.from_pretrained(base_dir), LoraConfig(**options))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, b_scale)
    model.save_pretrained(path)
    return path


def save_random_classifier(path: Path, seed: int = 0) -> Path:
    """A random ELECTRA-small classifier over the feedback labels, with a small WordPiece
    tokenizer (tests.tiny_models builds it; nothing is downloaded)."""
    from transformers import ElectraConfig, ElectraForSequenceClassification

    from takeoff.feedback.task import LABELS
    from tests.tiny_models import build_wordpiece_tokenizer

    wordpiece = build_wordpiece_tokenizer()
    config = ElectraConfig(vocab_size=len(wordpiece), num_labels=len(LABELS),
                           id2label=dict(enumerate(LABELS)), **ELECTRA_SMALL)
    torch.manual_seed(seed)
    ElectraForSequenceClassification(config).eval().save_pretrained(path)
    wordpiece.save_pretrained(path)
    return path
